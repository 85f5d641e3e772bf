"""Every check a bundle passes before any byte of it is unpickled: manifest, hashes, allowlist, versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.bundle.compat import check_compatibility
from api.bundle.files import BundleFiles, read_manifest
from api.bundle.pickle_scan import PickleInspection
from api.bundle.safe_load import CheckedArtifact, check_artifact
from api.bundle.trust import Trust


@dataclass(frozen=True)
class CheckedBundle:
    """A bundle whose files were read once, hash-checked, scanned and allowlisted: safe to unpickle."""

    files: BundleFiles
    manifest: dict[str, Any]
    artifacts: dict[Path, CheckedArtifact]
    notes: tuple[str, ...]


def expected_digests(files: BundleFiles, manifest: dict[str, Any], pins: dict[str, str]) -> dict[str, str]:
    """SHA-256 each artifact must have: the manifest's, overridden by MODEL_SHA256 pins."""
    recorded = manifest.get("files") or {}
    names = {p.name for p in files.artifacts}
    expected: dict[str, str] = {}
    for name in names:
        entry = recorded.get(name)
        digest = entry.get("sha256") if isinstance(entry, dict) else entry
        if isinstance(digest, str):
            expected[name] = digest
    expected.update({name: digest for name, digest in pins.items() if name in names})
    return expected


def recorded_versions(inspection: PickleInspection) -> dict[str, str]:
    """The library versions a pickle records about itself, read from its opcodes."""
    versions = {label: ", ".join(sorted(values)) for label, values in sorted(inspection.recorded.items())}
    if inspection.numpy_namespace:
        versions["numpy"] = "2.x" if inspection.numpy_namespace == "numpy._core" else "1.x"
    return versions


def check_bundle(files: BundleFiles, trust: Trust, sha256_pins: dict[str, str] | None = None) -> CheckedBundle:
    """Hash, scan and allowlist every artifact and compare versions; raises ArtifactError on any refusal."""
    manifest = read_manifest(files.manifest, files.version)
    expected = expected_digests(files, manifest, sha256_pins or {})
    checked = {path: check_artifact(path, trust, expected_sha256=expected.get(path.name)) for path in files.artifacts}
    notes = tuple(check_compatibility([c.inspection for c in checked.values()], trust))
    return CheckedBundle(files=files, manifest=manifest, artifacts=checked, notes=notes)
