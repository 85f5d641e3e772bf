"""Find the artifacts of a bundle directory and choose which model/preprocessor pair to serve.

The user's files always win: MODEL_DIR's own ``model_*.pkl`` are served, and the demo bundle in
``MODEL_DIR/demo/`` only when MODEL_DIR holds no model at all (a fresh clone). The choice, the
candidates and the reason are logged by file name only: no path reaches a log line or an answer.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.errors import ArtifactError

log = logging.getLogger(__name__)

VERSION_PATTERN = r"^[0-9]{8}_[0-9]{6}$"  # a bundle version, YYYYMMDD_HHMMSS, as query parameters take it
ARTIFACT_PATTERN = re.compile(r"^(?P<kind>model|preprocessor)_(?P<version>\d{8}_\d{6})\.(?:pkl|joblib)$")
MANIFEST_NAMES = ("manifest_{version}.json", "manifest.json")
PROFILE_NAMES = ("profile_{version}.json", "profile.json")
# The demo bundle's folder inside MODEL_DIR: served only while MODEL_DIR holds no model of its own.
DEMO_FOLDER = "demo"


@dataclass(frozen=True)
class BundleFiles:
    """The files that make up one servable model version, and why they were chosen."""

    directory: Path
    version: str
    model: Path
    preprocessor: Path | None
    manifest: Path | None
    profile: Path | None
    requirements: Path | None
    demo: bool = False
    reason: str = ""

    @property
    def artifacts(self) -> list[Path]:
        return [p for p in (self.preprocessor, self.model) if p is not None]

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Name, size and modification time of every file: changes when any of them is replaced."""
        stamps = []
        for path in (self.preprocessor, self.model, self.manifest, self.profile):
            if path is not None:
                try:
                    stat = path.stat()
                except OSError:
                    stamps.append((path.name, -1, -1))
                    continue
                stamps.append((path.name, stat.st_size, stat.st_mtime_ns))
        return tuple(stamps)


def _artifacts(directory: Path) -> dict[str, dict[str, Path]]:
    found: dict[str, dict[str, Path]] = {"model": {}, "preprocessor": {}}
    if not directory.is_dir():
        return found
    for path in sorted(directory.iterdir()):
        match = ARTIFACT_PATTERN.match(path.name)
        if match and path.is_file():
            found[match["kind"]][match["version"]] = path
    return found


def available_versions(directory: Path) -> list[str]:
    """Model versions that would be served from MODEL_DIR (its own, else the demo's), oldest first."""
    if not directory.is_dir():
        return []
    own = _artifacts(directory)["model"]
    return sorted(own or _artifacts(directory / DEMO_FOLDER)["model"])


def profile_path(directory: Path, version: str) -> Path | None:
    """The drift profile of ``version`` in ``directory`` now (it may be written after the model loaded)."""
    return _first_existing(directory, PROFILE_NAMES, version)


def _first_existing(directory: Path, names: tuple[str, ...], version: str) -> Path | None:
    for name in names:
        candidate = directory / name.format(version=version)
        if candidate.is_file():
            return candidate
    return None


def _names(found: dict[str, dict[str, Path]]) -> list[str]:
    return sorted(p.name for kind in found.values() for p in kind.values())


def _choose(directory: Path, version: str | None) -> tuple[Path, dict[str, dict[str, Path]], bool, str]:
    """Which folder serves: MODEL_DIR when it holds a model, else its demo/ folder (never silently)."""
    own = _artifacts(directory)
    demo_dir = directory / DEMO_FOLDER
    demo = _artifacts(demo_dir)
    if own["model"]:
        if version is not None and version not in own["model"] and version in demo["model"]:
            return demo_dir, demo, True, f"MODEL_VERSION={version} names the demo bundle"
        ignored = ", so the demo bundle is not used" if demo["model"] else ""
        return directory, own, False, f"MODEL_DIR holds your model files{ignored}"
    if demo["model"]:
        return demo_dir, demo, True, (
            "MODEL_DIR holds no model_<YYYYMMDD_HHMMSS>.pkl of yours, so the demo bundle (synthetic data) "
            "is served; copy your model_*.pkl and preprocessor_*.pkl into MODEL_DIR to serve yours"
        )
    files = ", ".join(sorted(p.name for p in directory.iterdir() if p.is_file())) or "none"
    raise ArtifactError(f"no model_<YYYYMMDD_HHMMSS>.pkl in MODEL_DIR (files there: {files})")


def resolve_bundle(directory: Path, version: str | None = None) -> BundleFiles:
    """Pick the newest model (or the pinned version) and the preprocessor it was trained on.

    A model without a preprocessor of its own timestamp is paired with the newest preprocessor
    not newer than it: data scientists often retrain the model on an unchanged preprocessor.
    """
    if not directory.is_dir():
        raise ArtifactError("MODEL_DIR is not a directory: set MODEL_DIR to the folder holding model_*.pkl")
    folder, found, demo, why = _choose(directory, version)
    models = found["model"]
    if version is None:
        version = max(models)
        why += f"; model_{version} is the newest of {len(models)}" if len(models) > 1 else ""
    elif version not in models:
        raise ArtifactError(
            f"MODEL_VERSION={version} has no model_{version}.pkl in MODEL_DIR; available: {', '.join(sorted(models))}"
        )
    else:
        why += f"; MODEL_VERSION={version} pins it"
    candidates = [v for v in found["preprocessor"] if v <= version]
    preprocessor = found["preprocessor"][max(candidates)] if candidates else None
    if preprocessor is not None and max(candidates) != version:
        why += f"; it has no preprocessor of its own stamp, so the newest older one ({preprocessor.name}) is used"
    requirements = folder / "requirements.txt"
    chosen = BundleFiles(
        directory=folder,
        version=version,
        model=models[version],
        preprocessor=preprocessor,
        manifest=_first_existing(folder, MANIFEST_NAMES, version),
        profile=_first_existing(folder, PROFILE_NAMES, version),
        requirements=requirements if requirements.is_file() else None,
        demo=demo,
        reason=why,
    )
    # Serving the demo is never silent: a warning, seen even at LOG_LEVEL=warning.
    log.log(
        logging.WARNING if demo else logging.INFO,
        "serving the demo bundle" if demo else "model bundle chosen",
        extra={
            "candidates": _names(_artifacts(directory)),
            "demo_candidates": _names(_artifacts(directory / DEMO_FOLDER)),
            "model_file": chosen.model.name,
            "preprocessor_file": preprocessor.name if preprocessor else None,
            "demo": demo,
            "reason": why,
        },
    )
    return chosen


def bundle_candidates(directory: Path) -> list[BundleFiles]:
    """Every version resolve_bundle could serve, each paired as it would be, oldest first.

    The same rule as serving: MODEL_DIR's own versions, else (only when it holds none) the demo's.
    Nothing is logged and nothing is opened: listing is cheap and quiet.
    """
    if not directory.is_dir():
        return []
    folder, found, demo = directory, _artifacts(directory), False
    if not found["model"]:
        folder, found, demo = directory / DEMO_FOLDER, _artifacts(directory / DEMO_FOLDER), True
    requirements = folder / "requirements.txt"
    bundles = []
    for version in sorted(found["model"]):
        older = [v for v in found["preprocessor"] if v <= version]
        bundles.append(
            BundleFiles(
                directory=folder,
                version=version,
                model=found["model"][version],
                preprocessor=found["preprocessor"][max(older)] if older else None,
                manifest=_first_existing(folder, MANIFEST_NAMES, version),
                profile=_first_existing(folder, PROFILE_NAMES, version),
                requirements=requirements if requirements.is_file() else None,
                demo=demo,
            )
        )
    return bundles


def read_manifest(path: Path | None, version: str) -> dict[str, Any]:
    """The manifest written by our training, or {} when the bundle has none (or not for this version)."""
    if path is None:
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"manifest {path.name} is not readable JSON: {_no_path(exc)}") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"manifest {path.name} is not a JSON object")
    if manifest.get("version") not in (None, version):
        # A manifest for another version of the same directory says nothing about this one.
        return {}
    return manifest


def _no_path(exc: BaseException) -> str:
    """An OSError's text names the full path; keep its reason only."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)
