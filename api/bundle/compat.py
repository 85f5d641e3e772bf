"""Whether the library versions artifacts were saved with can work with the installed ones."""

from __future__ import annotations

import importlib.util
import platform
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata

from api.bundle.pickle_scan import PickleInspection
from api.errors import IncompatibleArtifactError

# module name -> the distributions that may provide it
_DISTRIBUTIONS = {
    "sklearn": ("scikit-learn",), "numpy": ("numpy",), "scipy": ("scipy",), "pandas": ("pandas",),
    "lightgbm": ("lightgbm",), "xgboost": ("xgboost", "xgboost-cpu"), "joblib": ("joblib",),
}
# First scikit-learn release that supports numpy 2.
_SKLEARN_NUMPY2 = (1, 4, 2)


@dataclass(frozen=True)
class _Finding:
    message: str
    fatal: bool = True
    pins: tuple[str, ...] = ()  # requirements of an environment that can serve the artifact


def installed_versions() -> dict[str, str]:
    """Versions of the ML libraries that are importable here, and of Python."""
    versions: dict[str, str] = {}
    for module, distributions in _DISTRIBUTIONS.items():
        if importlib.util.find_spec(module) is None:
            continue
        for distribution in distributions:
            try:
                versions[module] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    versions["python"] = platform.python_version()
    return versions


def check_compatibility(
    inspections: Iterable[PickleInspection], installed: Mapping[str, str] | None = None
) -> list[str]:
    """Raise IncompatibleArtifactError when known incompatible; return warnings for the tolerable cases."""
    versions = dict(installed) if installed is not None else installed_versions()
    inspected = list(inspections)
    findings = [f for i in inspected for check in _CHECKS for f in check(i, versions)]
    problems = [f for f in findings if f.fatal]
    if problems:
        pins = list(dict.fromkeys(pin for f in problems for pin in f.pins))
        raise IncompatibleArtifactError(" ".join(f.message for f in problems) + " " + _fix(pins))
    return [f.message for f in findings if not f.fatal]


def fix_pins(inspections: Iterable[PickleInspection], installed: Mapping[str, str]) -> list[str]:
    """The requirement pins the fix would name (empty when `installed` can serve these artifacts)."""
    findings = [f for i in inspections for check in _CHECKS for f in check(i, installed)]
    return list(dict.fromkeys(pin for f in findings if f.fatal for pin in f.pins))


def _fix(pins: list[str]) -> str:
    wanted = " ".join(pins) if pins else "the versions above"
    if {"numpy<2", "numpy>=2"} <= set(pins):
        return (
            f"No single environment fits ({wanted}): the artifacts were saved under different numpy majors; "
            "re-save them together in one environment."
        )
    return (
        f"Serve it in a matching environment: put a requirements.txt with {wanted} beside the model in "
        "MODEL_DIR and start it with `make run` (or `docker build`), which builds that environment "
        "(the service's own libraries are added to it); or install those versions here."
    )


def _version(text: str) -> tuple[int, int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", text)[:3]] + [0, 0, 0]
    return numbers[0], numbers[1], numbers[2]


def _missing(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[_Finding]:
    packages = {module.split(".", 1)[0] for module, _ in inspection.globals}
    for package in sorted(packages & {"sklearn", "lightgbm", "xgboost", "scipy", "pandas"} - set(installed)):
        yield _Finding(f"{inspection.path.name} needs {package}, which is not installed.")


def _sklearn(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[_Finding]:
    current = installed.get("sklearn")
    if current is None:
        return
    name = inspection.path.name
    classes = sorted({n for m, n in inspection.globals if m.startswith("sklearn.") and n[:1].isupper()})
    for recorded in sorted(inspection.sklearn_versions):
        if _version(recorded)[:2] != _version(current)[:2]:
            known = " (ColumnTransformer/SimpleImputer/OneHotEncoder state changed in 1.2)" if (
                _version(recorded) < (1, 2, 0) <= _version(current)) else ""
            pins = (f"scikit-learn=={recorded}",) + (("numpy<2",) if _version(recorded) < _SKLEARN_NUMPY2 else ())
            yield _Finding(
                f"{name} was saved with scikit-learn {recorded}; installed {current} cannot transform or "
                f"predict with it reliably{known}: scikit-learn only supports unpickling "
                f"{'/'.join(classes) or 'estimators'} in the release that saved them.",
                pins=pins,
            )
        elif recorded != current:
            yield _Finding(
                f"{name} was saved with scikit-learn {recorded} and is served with {current} "
                "(same minor release, so it loads; results are only guaranteed in the saving release).",
                fatal=False,
            )


def _numpy(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[_Finding]:
    current = installed.get("numpy", "0")
    if inspection.numpy_namespace == "numpy._core" and _version(current)[0] < 2:
        yield _Finding(
            f"{inspection.path.name} was saved with numpy 2 (it names numpy._core); installed numpy "
            f"{current} cannot load it.",
            pins=("numpy>=2",),
        )


def _lightgbm(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[_Finding]:
    recorded, current = inspection.lightgbm_model_format, installed.get("lightgbm")
    if recorded is None or current is None:
        return
    # LightGBM N.x writes model text format vN and reads every format up to its own.
    needed = int(recorded.lstrip("v"))
    if _version(current)[0] < needed:
        yield _Finding(
            f"{inspection.path.name} holds a LightGBM model in text format {recorded}; installed "
            f"lightgbm {current} reads formats up to v{_version(current)[0]} only.",
            pins=(f"lightgbm>={needed}",),
        )


def _xgboost(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[_Finding]:
    recorded, current = inspection.xgboost_version, installed.get("xgboost")
    if recorded is None or current is None or _version(recorded) == _version(current):
        return
    if _version(recorded)[:2] > _version(current)[:2]:
        yield _Finding(
            f"{inspection.path.name} was saved with xgboost {recorded}; installed {current} is older and "
            "cannot read its serialised booster.",
            pins=(f"xgboost=={recorded}",),
        )
    else:
        yield _Finding(
            f"{inspection.path.name} was saved with xgboost {recorded} and is served with {current}; "
            "XGBoost only guarantees pickles within one release (Booster.save_model is portable).",
            fatal=False,
        )


_CHECKS = (_missing, _sklearn, _numpy, _lightgbm, _xgboost)
