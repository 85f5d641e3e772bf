"""Which globals a model pickle may name: estimator and array classes, and the callables that rebuild them."""

from __future__ import annotations

import _compat_pickle
import importlib
from collections.abc import Iterable
from functools import lru_cache

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

# A class is admitted when it lives in one of these packages and has, among its bases, one of
# the named classes from the paired package. Naming bases (not modules) covers every release's
# module layout; it admits e.g. numpy.float64 and sklearn.tree._tree.Tree but not numpy.memmap.
_FAMILIES: dict[str, frozenset[tuple[str, str]]] = {
    "sklearn": frozenset({
        ("sklearn", "BaseEstimator"), ("sklearn", "Tree"), ("sklearn", "TreePredictor"),
        ("sklearn", "BaseLoss"), ("sklearn", "CyLossFunction"), ("sklearn", "BaseLink"),
        ("sklearn", "Interval"), ("sklearn", "LossFunction"), ("sklearn", "DistanceMetric"),
        ("sklearn", "BinaryTree"), ("sklearn", "BinaryTree32"), ("sklearn", "BinaryTree64"),
        ("sklearn", "BaseOptimizer"), ("sklearn", "Bunch"),
    }),
    "lightgbm": frozenset({("sklearn", "BaseEstimator"), ("lightgbm", "Booster")}),
    "xgboost": frozenset({("sklearn", "BaseEstimator"), ("xgboost", "Booster")}),
    "numpy": frozenset({
        ("numpy", "dtype"), ("numpy", "generic"), ("numpy", "RandomState"), ("numpy", "Generator"),
        ("numpy", "BitGenerator"), ("numpy", "SeedSequence"),
    }),
    "scipy": frozenset({("scipy", "spmatrix"), ("scipy", "sparray"), ("scipy", "_spbase")}),
    "pandas": frozenset({
        ("pandas", "Index"), ("pandas", "Series"), ("pandas", "DataFrame"), ("pandas", "ExtensionDtype"),
        ("pandas", "ExtensionArray"), ("pandas", "BaseBlockManager"),
    }),
}
# Exactly these classes, not their subclasses (numpy.memmap is an ndarray that writes files).
_CLASSES: tuple[type, ...] = (np.ndarray, np.matrix)
# Cython's generated `__pyx_unpickle_<Class>(type, checksum, state)` and scikit-learn's
# `newObj(cls)` only call `cls.__new__`; cls is itself a global, so it is checked too.
_CYTHON_PACKAGES = frozenset({"sklearn", "numpy", "pandas"})
# Only these top-level packages are ever imported while resolving a name from a pickle.
_PACKAGES = frozenset(_FAMILIES) | {"builtins", "collections", "_codecs", "joblib"}


def canonical(module: str, name: str) -> tuple[str, str]:
    """The name the unpickler looks up (Python 2 names mapped as pickle does), in numpy 2's spelling."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module[len("numpy.core"):]
    return module, name


def is_allowed(module: str, name: str) -> bool:
    """Whether a pickle may reference module.name."""
    return _admit(module, name) is not None


def refused(names: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The names that are not allowed, sorted."""
    return sorted(pair for pair in set(names) if not is_allowed(*pair))


def resolve(module: str, name: str) -> object:
    """The object for an allowed module.name (for Unpickler.find_class); refuses anything else."""
    target = _admit(module, name)
    if target is None:
        raise UnsafeArtifactError(f"the pickle references {module}.{name}, which is not on the allowlist")
    return target


@lru_cache(maxsize=1024)
def _admit(module: str, name: str) -> object | None:
    module, name = canonical(module, name)
    package = module.split(".", 1)[0]
    target = _locate(module, name) if package in _PACKAGES and "." not in name else None
    if target is None:
        return None
    if (module, name) in RECONSTRUCTORS:
        return target
    if package in _CYTHON_PACKAGES and callable(target) and not isinstance(target, type) and (
        name.startswith("__pyx_unpickle_") or (package == "sklearn" and name == "newObj")
    ):
        return target
    if isinstance(target, type) and _is_admitted_class(target):
        return target
    return None


def _locate(module: str, name: str) -> object | None:
    """Import the module (never call anything the pickle names) and look the name up."""
    if not _NUMPY_2 and (module == "numpy._core" or module.startswith("numpy._core.")):
        module = "numpy.core" + module[len("numpy._core"):]
    try:
        owner = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(owner, name, None)


def _is_admitted_class(cls: type) -> bool:
    if cls in _CLASSES:
        return True
    package = cls.__module__.split(".", 1)[0]
    bases = _FAMILIES.get(package, frozenset())
    return any((base.__module__.split(".", 1)[0], base.__name__) in bases for base in cls.__mro__)
