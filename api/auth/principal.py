"""The authenticated caller and the two ways authentication fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# `feedback` labels predictions (admin implies it): a predict-only key cannot label what it likes.
SCOPES: Final = frozenset({"predict", "feedback", "admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a name safe to log, its scopes and how it proved itself."""

    name: str
    scopes: frozenset[str]
    method: Literal["api_key", "jwt", "none"]


ANONYMOUS: Final = Principal("anonymous", SCOPES, "none")


class AuthConfigError(ValueError):
    """The configured credentials cannot be used (the service refuses to start)."""


class InvalidCredentials(Exception):
    """Credentials were sent but do not prove anything; `reason` is safe to log and show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
