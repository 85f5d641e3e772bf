"""Turns a request's credentials into a Principal, and builds that from the settings' values."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from api.auth.keys import KeyStore, StoredKey
from api.auth.principal import ANONYMOUS, SCOPES, InvalidCredentials, Principal
from api.auth.tokens import JwtVerifier


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class Authenticator:
    """Turns the credentials of a request into a Principal, None (none sent) or InvalidCredentials."""

    def __init__(self, keys: KeyStore, verifier: JwtVerifier | None, *, disabled: bool = False) -> None:
        self.keys = keys
        self.verifier = verifier
        self.disabled = disabled

    def authenticate(self, api_key: str | None, bearer: str | None) -> Principal | None:
        """X-API-Key wins over Authorization: Bearer; a bearer is an API key or else a JWT."""
        if self.disabled:
            return ANONYMOUS
        if api_key is not None:
            if principal := self.keys.match(api_key):
                return principal
            raise InvalidCredentials("invalid API key")
        if bearer is None:
            return None
        if principal := self.keys.match(bearer):
            return principal
        if self.verifier is not None and _looks_like_jwt(bearer):
            return self.verifier.verify(bearer)
        raise InvalidCredentials("invalid token")


@dataclass(frozen=True, slots=True)
class AuthSetup:
    """The authenticator plus what to say about it once at start."""

    authenticator: Authenticator
    mode: Literal["disabled", "generated", "configured"]
    generated_key: str | None = None


def build_authenticator(
    *,
    disabled: bool,
    api_keys: str | None,
    api_keys_file: Path | None,
    jwt_secret: str | None,
    jwt_public_key: Path | None,
    jwt_jwks_file: Path | None,
    jwt_audience: str | None,
    jwt_issuer: str | None,
) -> AuthSetup:
    """Configured credentials; with none and auth not disabled, one random key for this process."""
    keys = KeyStore.parse(api_keys, api_keys_file)
    verifier = JwtVerifier.from_files(
        secret=jwt_secret, public_key=jwt_public_key, jwks_file=jwt_jwks_file, audience=jwt_audience, issuer=jwt_issuer
    )
    if disabled:
        return AuthSetup(Authenticator(keys, verifier, disabled=True), "disabled")
    if len(keys) or verifier is not None:
        return AuthSetup(Authenticator(keys, verifier), "configured")
    generated = secrets.token_urlsafe(32)
    digest = hashlib.sha256(generated.encode()).digest()
    keys = KeyStore([StoredKey(digest, Principal("generated", SCOPES, "api_key"))])
    return AuthSetup(Authenticator(keys, None), "generated", generated)
