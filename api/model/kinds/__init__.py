"""Model kinds: one module per kind of fitted model, each behind the interface in base.py.

Every module of this package that defines ``KIND`` is a built-in kind (sklearn.py, lightgbm.py,
xgboost.py); modules named in the MODEL_KINDS setting add kinds that live elsewhere, asked first.
The loader asks the kinds in turn which one ``recognises`` the unpickled model, and builds the
artifact ``Trust`` (allowlist entries, recorded versions, compatibility checks) from all of them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from functools import cache

from api.bundle.trust import Library, Trust, trust
from api.errors import ArtifactError
from api.model.kinds.base import (
    Bound,
    CannotExplain,
    Contributions,
    Explain,
    ModelKind,
    ModelOutput,
    Predict,
    Task,
    by_threshold,
    cannot_explain,
)

__all__ = [
    "Bound",
    "CannotExplain",
    "Contributions",
    "Explain",
    "ModelKind",
    "ModelOutput",
    "Predict",
    "Task",
    "builtin_kinds",
    "by_threshold",
    "cannot_explain",
    "kinds_from",
    "recognise",
    "trust_for",
]


@cache
def builtin_kinds() -> tuple[ModelKind, ...]:
    """The kinds defined in this package, specific ones first and the catch-all (fallback) last."""
    found: list[ModelKind] = []
    for module in pkgutil.iter_modules(__path__):
        kind = getattr(importlib.import_module(f"{__name__}.{module.name}"), "KIND", None)
        if isinstance(kind, ModelKind):
            found.append(kind)
    return tuple(sorted(found, key=lambda k: (k.fallback, k.name)))


def kinds_from(names: Sequence[str] = ()) -> tuple[ModelKind, ...]:
    """The kinds named by MODEL_KINDS, then the built-ins.

    Each name is ``package.module`` (which defines ``KIND``) or ``package.module:Attribute`` (a
    ModelKind instance or subclass).
    """
    extra: list[ModelKind] = []
    for name in names:
        module_name, _, attribute = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ArtifactError(f"MODEL_KINDS names {name!r}, which cannot be imported: {exc}") from exc
        kind = getattr(module, attribute or "KIND", None)
        if isinstance(kind, type) and issubclass(kind, ModelKind):
            kind = kind()
        if not isinstance(kind, ModelKind):
            raise ArtifactError(f"MODEL_KINDS names {name!r}, which is not a ModelKind (see api/model/kinds/base.py)")
        extra.append(kind)
    return (*extra, *builtin_kinds())


def recognise(model: object, kinds: Sequence[ModelKind]) -> ModelKind | None:
    """The first kind that serves this model, if any."""
    return next((kind for kind in kinds if kind.recognises(model)), None)


def trust_for(kinds: Sequence[ModelKind], extra_globals: Sequence[str] = ()) -> Trust:
    """The artifact rules of these kinds' libraries, plus globals the operator allowed by name."""
    libraries: list[Library] = []
    for kind in kinds:
        if kind.library is not None and kind.library not in libraries:
            libraries.append(kind.library)
    return trust(libraries, extra_globals)
