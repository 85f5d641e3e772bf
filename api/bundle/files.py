"""Find the artifacts of a bundle directory and choose which model/preprocessor pair to serve."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.errors import ArtifactError

ARTIFACT_PATTERN = re.compile(r"^(?P<kind>model|preprocessor)_(?P<version>\d{8}_\d{6})\.(?:pkl|joblib)$")
MANIFEST_NAMES = ("manifest_{version}.json", "manifest.json")
PROFILE_NAMES = ("profile_{version}.json", "profile.json")


@dataclass(frozen=True)
class BundleFiles:
    """The files that make up one servable model version."""

    directory: Path
    version: str
    model: Path
    preprocessor: Path | None
    manifest: Path | None
    profile: Path | None
    requirements: Path | None

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
    for path in sorted(directory.iterdir()):
        match = ARTIFACT_PATTERN.match(path.name)
        if match and path.is_file():
            found[match["kind"]][match["version"]] = path
    return found


def available_versions(directory: Path) -> list[str]:
    """Model versions present in the directory, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(_artifacts(directory)["model"])


def _first_existing(directory: Path, names: tuple[str, ...], version: str) -> Path | None:
    for name in names:
        candidate = directory / name.format(version=version)
        if candidate.is_file():
            return candidate
    return None


def resolve_bundle(directory: Path, version: str | None = None) -> BundleFiles:
    """Pick the newest model (or the pinned version) and the preprocessor it was trained on.

    A model without a preprocessor of its own timestamp is paired with the newest preprocessor
    not newer than it: data scientists often retrain the model on an unchanged preprocessor.
    """
    if not directory.is_dir():
        raise ArtifactError(f"MODEL_DIR {directory} is not a directory")
    found = _artifacts(directory)
    models = found["model"]
    if not models:
        raise ArtifactError(
            f"no model_<YYYYMMDD_HHMMSS>.pkl in {directory} (files: "
            f"{', '.join(sorted(p.name for p in directory.iterdir())) or 'none'})"
        )
    if version is None:
        version = max(models)
    elif version not in models:
        raise ArtifactError(
            f"MODEL_VERSION={version} has no model_{version}.pkl in {directory}; available: {', '.join(sorted(models))}"
        )
    candidates = [v for v in found["preprocessor"] if v <= version]
    preprocessor = found["preprocessor"][max(candidates)] if candidates else None
    requirements = directory / "requirements.txt"
    return BundleFiles(
        directory=directory,
        version=version,
        model=models[version],
        preprocessor=preprocessor,
        manifest=_first_existing(directory, MANIFEST_NAMES, version),
        profile=_first_existing(directory, PROFILE_NAMES, version),
        requirements=requirements if requirements.is_file() else None,
    )


def bundle_candidates(directory: Path) -> list[BundleFiles]:
    """Every version resolve_bundle could serve from the directory, each paired as it would be, oldest first.

    Nothing is logged and nothing is opened: listing is cheap and quiet.
    """
    if not directory.is_dir():
        return []
    found = _artifacts(directory)
    bundles = []
    for version in sorted(found["model"]):
        older = [v for v in found["preprocessor"] if v <= version]
        requirements = directory / "requirements.txt"
        bundles.append(
            BundleFiles(
                directory=directory,
                version=version,
                model=found["model"][version],
                preprocessor=found["preprocessor"][max(older)] if older else None,
                manifest=_first_existing(directory, MANIFEST_NAMES, version),
                profile=_first_existing(directory, PROFILE_NAMES, version),
                requirements=requirements if requirements.is_file() else None,
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
        raise ArtifactError(f"manifest {path.name} is not readable JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"manifest {path.name} is not a JSON object")
    if manifest.get("version") not in (None, version):
        # A manifest for another version of the same directory says nothing about this one.
        return {}
    return manifest
