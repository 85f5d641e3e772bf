"""The libraries a bundle's serving environment needs, with versions that work together.

An environment always holds (1) the service's own stack (requirements-service.txt), (2) the
bundle's own pins (its requirements.txt; for bare .pkl files, the pins the version check would
suggest), (3) the ML libraries the serving core imports (numpy, scipy, pandas, scikit-learn) and
(4) the libraries the pickles reference (each model kind's library: LightGBM, XGBoost, …), read
statically from their opcodes.
Whatever the bundle does not pin is completed with known-good versions of its numpy generation
(the first user's scikit-learn 1.1.3 / numpy 1.26 stack, or the default numpy 2 stack), so
"scikit-learn==1.1.3 numpy<2" and the user's full requirements.txt give the same environment.

Used by scripts/ensure_env.py (`make run`, `make test`) and by the Dockerfile's build stage:
    python -m api.model.environment MODEL_DIR [--requirements FILE]   a JSON plan (--lines: pip's input)
    python -m api.model.environment MODEL_DIR --check                 import what serving needs, here
Only the standard library is imported at the top, so --check can name whatever module is missing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.model import pins as req

if TYPE_CHECKING:
    from api.bundle.pickle_scan import PickleInspection
    from api.bundle.trust import Trust

ROOT = Path(__file__).resolve().parents[2]
# What the serving core imports besides requirements-service.txt (api/model, api/bundle, api/monitoring).
CORE = ("numpy", "scipy", "pandas", "scikit-learn")
IMPORT_NAMES = {"scikit-learn": "sklearn", "xgboost-cpu": "xgboost"}
CORE_IMPORTS = ("numpy", "scipy", "pandas", "sklearn", "joblib", "orjson")
# Known-good versions for bundles of the numpy 1.x generation (Python 3.11 wheels, numpy 1.26):
# the first user's scikit-learn 1.1.3 stack; LightGBM 3.3.5 for model format v3, 4.5.0 for v4.
NUMPY1 = {
    "numpy": "1.26.4",
    "scipy": "1.11.4",
    "pandas": "2.1.4",
    "scikit-learn": "1.3.2",
    "lightgbm": "4.5.0",
    "xgboost": "2.0.3",
}
LIGHTGBM_V3 = "3.3.5"
# First scikit-learn release built for numpy 2: older ones need numpy < 2.
SKLEARN_NUMPY2 = (1, 4, 2)


@dataclass
class Plan:
    """What to install for one bundle, and why."""

    requirements: list[str]
    imports: list[str]
    stack: str  # "default" (requirements.txt as it is) or "bundle"
    model_file: str
    demo: bool
    reason: str
    notes: list[str] = field(default_factory=list)


def _numpy_generation(pins: dict[str, tuple[str, str]], recorded_sklearn: str | None) -> int:
    """1 when the pins (or the recorded scikit-learn) rule out numpy 2, else 2."""
    if "numpy" in pins:
        return 2 if req.allows(pins["numpy"][1], "2.0.0") else 1
    sklearn = req.exact(pins["scikit-learn"][1]) if "scikit-learn" in pins else recorded_sklearn
    return 1 if sklearn is not None and req.release(sklearn) < SKLEARN_NUMPY2 else 2


def _default_versions(default: dict[str, str], trust: Trust) -> dict[str, str]:
    """The default stack as check_compatibility's `installed` mapping (module name → version)."""
    modules = {"numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "joblib": "joblib"}
    modules.update({req.canonical(dist): lib.package for lib in trust.libraries for dist in lib.distributions})
    versions = {modules[n]: req.exact(spec) or "" for n, spec in default.items() if n in modules}
    versions["python"] = ".".join(map(str, sys.version_info[:3]))
    return versions


def _builtin_trust() -> Trust:
    """The artifact rules of the built-in model kinds (what the loader uses when MODEL_KINDS is empty)."""
    from api.model.kinds import builtin_kinds, trust_for

    return trust_for(builtin_kinds())


def _inspect(model_dir: Path, version: str | None, trust: Trust) -> tuple[Any, list[PickleInspection]]:
    from api.bundle.files import resolve_bundle
    from api.bundle.pickle_scan import inspect_pickle

    files = resolve_bundle(model_dir, version)
    return files, [inspect_pickle(path, trust.recorders) for path in files.artifacts]


def needed_imports(model_dir: Path, version: str | None = None) -> list[str]:
    """What serving this bundle imports: the core libraries and those its pickles reference."""
    trust = _builtin_trust()
    _, inspections = _inspect(model_dir, version, trust)
    return _imports(_referenced(inspections, trust), trust)


def _providers(trust: Trust) -> dict[str, str]:
    """Package named in pickles → the distribution that provides it, for each model kind's library."""
    return {lib.package: lib.distributions[0] for lib in trust.libraries if lib.distributions}


def _referenced(inspections: list[PickleInspection], trust: Trust) -> list[str]:
    """Distributions of the libraries the pickles name a global of (scikit-learn, LightGBM, XGBoost, …)."""
    providers = _providers(trust)
    tops = {module.split(".", 1)[0] for inspection in inspections for module, _ in inspection.globals}
    return sorted(req.canonical(providers[top]) for top in tops if top in providers)


def _imports(referenced: list[str], trust: Trust) -> list[str]:
    modules = {req.canonical(dist): lib.package for lib in trust.libraries for dist in lib.distributions}
    return list(dict.fromkeys(modules.get(n, IMPORT_NAMES.get(n, n)) for n in (*CORE, *referenced)))


def _recorded(inspections: list[PickleInspection], label: str) -> set[str]:
    return {value for inspection in inspections for value in inspection.recorded.get(label, ())}


def plan_environment(
    model_dir: Path,
    *,
    version: str | None = None,
    requirements: Path | None = None,
    service_file: Path = ROOT / "requirements-service.txt",
    default_file: Path = ROOT / "requirements.txt",
) -> Plan:
    """The requirement lines for the bundle MODEL_DIR serves (the same choice the service makes)."""
    from api.bundle.compat import fix_pins

    trust = _builtin_trust()
    files, inspections = _inspect(model_dir, version, trust)
    service_lines = req.read_requirements(service_file)
    service = req.named(service_lines)
    default_lines = req.read_requirements(default_file)
    default = {n: spec for n, (_, spec) in req.named(default_lines).items() if n not in service}
    referenced = _referenced(inspections, trust)
    imports = _imports(referenced, trust)

    def plan(stack: str, lines: list[str], notes: list[str]) -> Plan:
        return Plan(lines, imports, stack, files.model.name, files.demo, files.reason, notes)

    source = requirements or files.requirements
    if source is not None:
        own = req.read_requirements(source)
        notes = [f"pins from {source.name}: {' '.join(own) or 'none'}"]
    else:
        own = fix_pins(inspections, trust, _default_versions(default, trust))
        if not own:
            return plan("default", default_lines, ["no requirements.txt beside the model; the default stack serves it"])
        notes = [f"no requirements.txt beside the model; its pickles need {' '.join(own)}"]
    options = [line for line in own if line.startswith("-")]
    named = req.named(own)
    pins = {n: v for n, v in named.items() if n not in service}
    notes += [f"{n}: the service's own {service[n][0]} is used, not {named[n][0]}"
              for n in sorted(set(named) & set(service)) if named[n][1].replace(" ", "") != service[n][1]]
    if not options and all(default.get(n) == spec.replace(" ", "") for n, (_, spec) in pins.items()):
        return plan("default", default_lines, [*notes, "these are the default stack's versions"])

    recorded = max(_recorded(inspections, "sklearn"), key=req.release, default=None)
    generation = _numpy_generation(pins, recorded)
    known = dict(NUMPY1) if generation == 1 else {n: req.exact(spec) or "" for n, spec in default.items()}
    if generation == 1 and _recorded(inspections, "lightgbm_model_format") == {"v3"}:
        known["lightgbm"] = LIGHTGBM_V3
    if recorded is not None:
        known["scikit-learn"] = recorded
    xgboost = max(_recorded(inspections, "xgboost"), key=req.release, default=None)
    if xgboost is not None:
        known["xgboost"] = xgboost
    chosen = {n: line for n, (line, _) in pins.items()}
    added: list[str] = []
    for name in (*CORE, *referenced):
        wanted = known.get(name)
        if not wanted:
            if name not in pins:  # a kind's library we know no good version of: let pip choose
                chosen[name] = name
                added.append(name)
            continue
        if name not in pins:
            distribution = "xgboost-cpu" if name == "xgboost" and generation == 2 else name
            chosen[name] = f"{distribution}=={wanted}"
        elif req.exact(pins[name][1]) is None and req.allows(pins[name][1], wanted):
            # A range the known-good version satisfies: pin it, so equal stacks share one environment.
            chosen[name] = f"{name}=={wanted}"
        else:
            continue
        added.append(chosen[name])
    if added:
        notes.append(f"completed with known-good versions for numpy {generation}.x: {' '.join(added)}")
    ml = sorted((req.normal_line(line) for line in chosen.values()), key=str.lower)
    return plan("bundle", [*service_lines, *ml, *options], notes)


def check_imports(modules: list[str]) -> str | None:
    """Import each module here; the first failure as a sentence naming it, or None."""
    for name in [*CORE_IMPORTS, *modules, "api.main"]:
        try:
            importlib.import_module(name)
        except (ImportError, OSError) as exc:  # missing, built for another numpy, or a missing system library
            return f"`import {name}` fails: {type(exc).__name__}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--requirements", type=Path, help="the bundle's pins (default: its requirements.txt)")
    parser.add_argument("--service", type=Path, default=ROOT / "requirements-service.txt")
    parser.add_argument("--default", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--lines", action="store_true", help="print the requirement lines only")
    parser.add_argument("--check", action="store_true", help="import what serving this bundle needs, here")
    args = parser.parse_args(argv)
    failure = check_imports([]) if args.check else None  # the core first: reading pickles needs numpy
    if failure is not None:
        sys.stderr.write(f"this environment cannot serve: {failure}\n")
        return 1
    from api.errors import ArtifactError

    version = os.environ.get("MODEL_VERSION") or None
    if args.check:
        try:
            modules = needed_imports(args.model_dir, version)
        except ArtifactError as exc:
            sys.stderr.write(f"cannot check the environment: {exc.message}\n")
            return 1
        failure = check_imports(modules)
        if failure is not None:
            sys.stderr.write(f"this environment cannot serve the bundle: {failure}\n")
            return 1
        sys.stdout.write(f"imports ok: {' '.join(modules)} api.main\n")
        return 0
    try:
        plan = plan_environment(
            args.model_dir,
            version=version,
            requirements=args.requirements,
            service_file=args.service,
            default_file=args.default,
        )
    except ArtifactError as exc:
        sys.stderr.write(f"cannot prepare an environment: {exc.message}\n")
        return 1
    sys.stdout.write("\n".join(plan.requirements) + "\n" if args.lines else json.dumps(asdict(plan)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
