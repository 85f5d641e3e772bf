"""The rules artifacts are checked against: the base, plus what each ML library (model kind) brings.

The bundle layer knows numpy, scipy, pandas and joblib; scikit-learn, LightGBM, XGBoost — or a kind
of your own — each describe themselves as a ``Library``: the globals their pickles may name, the
facts those pickles record (the release that saved them), and the compatibility checks on those
facts. The loader builds one ``Trust`` from the model kinds and passes it down.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from api.bundle.allowlist import BASE_PACKAGES, Allowlist, Entries
from api.bundle.pickle_scan import PickleInspection, Recorder
from api.errors import UnsafeArtifactError


@dataclass(frozen=True)
class Finding:
    """One compatibility finding: fatal ones refuse the bundle, naming pins of an environment that fits."""

    message: str
    fatal: bool = True
    pins: tuple[str, ...] = ()  # requirements of an environment that can serve the artifact


# (what a file records, installed versions by module) -> findings
Check = Callable[[PickleInspection, Mapping[str, str]], Iterator[Finding]]


@dataclass(frozen=True)
class Library:
    """What one ML library adds to artifact trust."""

    allow: Entries
    distributions: tuple[str, ...] = ()  # installed distributions that may provide the package
    recorders: tuple[Recorder, ...] = ()
    checks: tuple[Check, ...] = ()

    @property
    def package(self) -> str:
        return self.allow.package


@dataclass(frozen=True)
class Trust:
    """The base families, each library's rules, and any globals the operator allowed by name."""

    libraries: tuple[Library, ...] = ()
    extra: tuple[Entries, ...] = ()

    @cached_property
    def allowlist(self) -> Allowlist:
        return Allowlist((*(library.allow for library in self.libraries), *self.extra))

    @property
    def recorders(self) -> tuple[Recorder, ...]:
        return tuple(recorder for library in self.libraries for recorder in library.recorders)


def trust(libraries: Sequence[Library], extra_globals: Sequence[str] = ()) -> Trust:
    """The libraries' rules plus ``module.Name`` globals allowed by the operator (EXTRA_ALLOWED_GLOBALS).

    Extra names are for code of your own: a name from the standard library, from the base packages
    or from a library whose entries are already vetted (e.g. ``numpy.load``) is refused.
    """
    reserved = BASE_PACKAGES | {library.package for library in libraries}
    by_package: dict[str, set[tuple[str, str]]] = {}
    for text in extra_globals:
        module, _, name = text.strip().rpartition(".")
        package = module.split(".", 1)[0]
        if not module or not name.isidentifier():
            raise UnsafeArtifactError(f"EXTRA_ALLOWED_GLOBALS: {text!r} is not a module.Name")
        if package in reserved or package in sys.stdlib_module_names:
            raise UnsafeArtifactError(
                f"EXTRA_ALLOWED_GLOBALS: {text!r} is not code of your own ({package} is the standard library or "
                "a library whose classes are already allowlisted); only your own classes and functions can be added"
            )
        by_package.setdefault(package, set()).add((module, name))
    extra = tuple(Entries(package, names=frozenset(found)) for package, found in sorted(by_package.items()))
    return Trust(tuple(libraries), extra)
