"""Whether the library versions artifacts were saved with can work with the installed ones."""

from __future__ import annotations

import importlib.util
import platform
import re
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata

from api.bundle.pickle_scan import PickleInspection
from api.bundle.trust import Check, Finding, Trust
from api.errors import IncompatibleArtifactError

# module name -> the distributions that may provide it (each library adds its own)
_DISTRIBUTIONS = {"numpy": ("numpy",), "scipy": ("scipy",), "pandas": ("pandas",), "joblib": ("joblib",)}


def installed_versions(trust: Trust) -> dict[str, str]:
    """Versions of the base and the libraries' packages that are importable here, and of Python."""
    every = {**_DISTRIBUTIONS, **{library.package: library.distributions for library in trust.libraries}}
    versions: dict[str, str] = {}
    for module, distributions in every.items():
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
    inspections: Iterable[PickleInspection], trust: Trust, installed: Mapping[str, str] | None = None
) -> list[str]:
    """Raise IncompatibleArtifactError when known incompatible; return warnings for the tolerable cases."""
    versions = dict(installed) if installed is not None else installed_versions(trust)
    inspected = list(inspections)
    # A library known by its distributions must be installed (a package of your own is found by the allowlist).
    packages = {"scipy", "pandas"} | {library.package for library in trust.libraries if library.distributions}
    checks = (_missing(packages), _numpy, *(check for library in trust.libraries for check in library.checks))
    findings = [f for i in inspected for check in checks for f in check(i, versions)]
    problems = [f for f in findings if f.fatal]
    if problems:
        pins = list(dict.fromkeys(pin for f in problems for pin in f.pins))
        directories = sorted({str(i.path.parent) for i in inspected})
        raise IncompatibleArtifactError(" ".join(f.message for f in problems) + " " + _fix(pins, directories))
    return [f.message for f in findings if not f.fatal]


def _fix(pins: list[str], directories: list[str]) -> str:
    where = directories[0] if len(directories) == 1 else "<model dir>"
    wanted = " ".join(pins) if pins else "the versions above"
    if {"numpy<2", "numpy>=2"} <= set(pins):
        return (
            f"No single environment fits ({wanted}): the artifacts were saved under different numpy majors; "
            "re-save them together in one environment."
        )
    return (
        f"Serve it in a matching environment: put a requirements.txt with {wanted} beside the model "
        f"and run `MODEL_DIR={where} make run`, or build the image with "
        f"--build-arg BUNDLE_REQUIREMENTS=<that requirements.txt>."
    )


def version_tuple(text: str) -> tuple[int, int, int]:
    """The first three numbers of a version string ("1.1.3" -> (1, 1, 3); missing parts are 0)."""
    numbers = [int(n) for n in re.findall(r"\d+", text)[:3]] + [0, 0, 0]
    return numbers[0], numbers[1], numbers[2]


def _missing(packages: set[str]) -> Check:
    def check(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[Finding]:
        referenced = {module.split(".", 1)[0] for module, _ in inspection.globals}
        for package in sorted(referenced & packages - set(installed)):
            yield Finding(f"{inspection.path.name} needs {package}, which is not installed.")

    return check


def _numpy(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[Finding]:
    current = installed.get("numpy", "0")
    if inspection.numpy_namespace == "numpy._core" and version_tuple(current)[0] < 2:
        yield Finding(
            f"{inspection.path.name} was saved with numpy 2 (it names numpy._core); installed numpy "
            f"{current} cannot load it.",
            pins=("numpy>=2",),
        )
