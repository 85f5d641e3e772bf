"""Which globals a model pickle may name: the base families here, plus the entries each model kind brings.

The base is what every bundle's arrays and containers need (numpy, scipy.sparse, pandas, a few
builtins and joblib's array wrapper). The ML libraries' entries (scikit-learn, LightGBM, XGBoost,
or a kind of your own) are not listed here: each model kind declares its own (api/model/kinds/)
and the loader hands them down as an ``Allowlist``.
"""

from __future__ import annotations

import _compat_pickle
import importlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from api.errors import UnsafeArtifactError

_NUMPY_2 = int(np.__version__.split(".", 1)[0]) >= 2

# Callables (not classes) that pickles of fitted models call to rebuild themselves, spelled the
# numpy-2 way (numpy 1 files say numpy.core.…; canonical() folds both spellings into one).
RECONSTRUCTORS = frozenset({
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),  # protocol 5 arrays
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("_codecs", "encode"),  # protocol 2 spells bytes as _codecs.encode(str, "latin1")
    ("builtins", "bytearray"),
    ("builtins", "bytes"),
    ("builtins", "complex"),
    ("builtins", "frozenset"),
    ("builtins", "set"),
    ("builtins", "slice"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas._libs.internals", "_unpickle_block"),
})


@dataclass(frozen=True)
class Entries:
    """Globals the pickles of one package may name beyond the base (what a model kind declares).

    A class of ``package`` is admitted when one of ``bases`` — (top-level package, class name) pairs —
    is among its bases: naming bases, not modules, covers every release's module layout. ``names``
    are admitted exactly, as (module, name). ``cython`` admits Cython's generated
    ``__pyx_unpickle_<Class>`` reconstructors of the package, and ``factories`` the named callables
    that only call ``cls.__new__`` (cls is itself a global, so it is checked too).
    """

    package: str
    bases: frozenset[tuple[str, str]] = frozenset()
    names: frozenset[tuple[str, str]] = frozenset()
    cython: bool = False
    factories: frozenset[str] = frozenset()


# A class is admitted when it lives in one of these packages and has one of the paired bases; this
# admits e.g. numpy.float64 and scipy's csr_matrix but not numpy.memmap.
BASE: tuple[Entries, ...] = (
    Entries("numpy", bases=frozenset({
        ("numpy", "dtype"), ("numpy", "generic"), ("numpy", "RandomState"), ("numpy", "Generator"),
        ("numpy", "BitGenerator"), ("numpy", "SeedSequence"),
    }), cython=True),
    Entries("scipy", bases=frozenset({("scipy", "spmatrix"), ("scipy", "sparray"), ("scipy", "_spbase")})),
    Entries("pandas", bases=frozenset({
        ("pandas", "Index"), ("pandas", "Series"), ("pandas", "DataFrame"), ("pandas", "ExtensionDtype"),
        ("pandas", "ExtensionArray"), ("pandas", "BaseBlockManager"),
    }), cython=True),
    # pandas 3 keeps text in Arrow-backed arrays when pyarrow is installed, so a fitted pipeline's
    # column index pickles as an Arrow array: rebuilt from its type alias and byte buffers, nothing else.
    Entries("pyarrow", names=frozenset({
        ("pyarrow.lib", "_restore_array"), ("pyarrow.lib", "py_buffer"), ("pyarrow.lib", "type_for_alias"),
    })),
)
# Exactly these classes, not their subclasses (numpy.memmap is an ndarray that writes files).
_CLASSES: tuple[type, ...] = (np.ndarray, np.matrix)
_BASE_PACKAGES = frozenset({"builtins", "collections", "_codecs", "joblib"})
BASE_PACKAGES = _BASE_PACKAGES | {entry.package for entry in BASE}
_CACHED_NAMES = 4096


def canonical(module: str, name: str) -> tuple[str, str]:
    """The name the unpickler looks up (Python 2 names mapped as pickle does), in numpy 2's spelling."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module[len("numpy.core"):]
    return module, name


class Allowlist:
    """The base families plus the given entries: answers "may a pickle name module.name?"."""

    def __init__(self, entries: Iterable[Entries] = ()) -> None:
        every = (*BASE, *entries)
        self._families: dict[str, set[tuple[str, str]]] = {}
        for entry in every:
            self._families.setdefault(entry.package, set()).update(entry.bases)
        self._names = frozenset(canonical(*pair) for entry in every for pair in entry.names)
        self._cython = frozenset(entry.package for entry in every if entry.cython)
        self._factories = frozenset((entry.package, name) for entry in every for name in entry.factories)
        # Only modules of these top-level packages are ever imported while resolving a name from a
        # pickle; a package that only lists exact names has only those names' modules imported.
        self._packages = _BASE_PACKAGES | {
            entry.package for entry in every if entry.bases or entry.cython or entry.factories
        }
        self._admitted: dict[tuple[str, str], object | None] = {}

    def is_allowed(self, module: str, name: str) -> bool:
        """Whether a pickle may reference module.name."""
        return self._admit(module, name) is not None

    def refused(self, names: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The names that are not allowed, sorted."""
        return sorted(pair for pair in set(names) if not self.is_allowed(*pair))

    def resolve(self, module: str, name: str) -> object:
        """The object for an allowed module.name (for Unpickler.find_class); refuses anything else."""
        target = self._admit(module, name)
        if target is None:
            raise UnsafeArtifactError(f"the pickle references {module}.{name}, which is not on the allowlist")
        return target

    def _admit(self, module: str, name: str) -> object | None:
        key = (module, name)
        if key in self._admitted:
            return self._admitted[key]
        target = self._find(*canonical(module, name))
        if len(self._admitted) < _CACHED_NAMES:  # a hostile pickle may name endless distinct globals
            self._admitted[key] = target
        return target

    def _find(self, module: str, name: str) -> object | None:
        package = module.split(".", 1)[0]
        exact = (module, name) in RECONSTRUCTORS or (module, name) in self._names
        if "." in name or not (exact or package in self._packages):
            return None
        target = _locate(module, name)
        if target is None or exact:
            return target
        if package in self._cython and callable(target) and not isinstance(target, type) and (
            name.startswith("__pyx_unpickle_") or (package, name) in self._factories
        ):
            return target
        if isinstance(target, type) and self._is_admitted_class(target):
            return target
        return None

    def _is_admitted_class(self, cls: type) -> bool:
        if cls in _CLASSES:
            return True
        bases = self._families.get(cls.__module__.split(".", 1)[0], ())
        return any((base.__module__.split(".", 1)[0], base.__name__) in bases for base in cls.__mro__)


def _locate(module: str, name: str) -> object | None:
    """Import the module (never call anything the pickle names) and look the name up."""
    if not _NUMPY_2 and (module == "numpy._core" or module.startswith("numpy._core.")):
        module = "numpy.core" + module[len("numpy._core"):]
    try:
        owner = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(owner, name, None)
