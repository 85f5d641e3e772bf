"""The versions in MODEL_DIR, each checked without being unpickled: what GET /models lists.

A version is a model file plus the preprocessor it pairs with. Each is read, hashed, scanned and
allowlisted, and its recorded library versions compared with the installed ones, exactly as an
activation would before unpickling; nothing is unpickled here. Results are cached per file
(name, size, modification time), so listing a directory of unchanged files costs a few ``stat``
calls. Only file names appear in what this returns, never a path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from api.bundle.checks import expected_digests, recorded_versions
from api.bundle.compat import check_compatibility
from api.bundle.files import BundleFiles, bundle_candidates, read_manifest
from api.bundle.safe_load import CheckedArtifact, check_artifact, sha256_file
from api.bundle.trust import Trust
from api.errors import ArtifactError
from api.model.loaded import ArtifactInfo

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class VersionRecord:
    """One version as found on disk: its files, and why it cannot be served (None when it can)."""

    version: str
    files: tuple[ArtifactInfo, ...]
    problem: str | None
    fingerprint: Fingerprint
    demo: bool = False


def _artifact_info(role: str, path: Path, checked: CheckedArtifact | None) -> ArtifactInfo:
    try:
        size = path.stat().st_size
        digest = checked.sha256 if checked is not None else sha256_file(path)
    except OSError:
        size, digest = -1, ""
    return ArtifactInfo(
        role=role,
        name=path.name,
        sha256=digest,
        size_bytes=size,
        recorded_versions=recorded_versions(checked.inspection) if checked is not None else {},
    )


def inspect_version(files: BundleFiles, trust: Trust, sha256_pins: dict[str, str] | None = None) -> VersionRecord:
    """Every pre-unpickling check of one version, each file reported even when another is refused."""
    fingerprint = files.fingerprint()
    problems: list[str] = []
    try:
        manifest = read_manifest(files.manifest, files.version)
    except ArtifactError as exc:
        manifest = {}
        problems.append(exc.message)
    expected = expected_digests(files, manifest, sha256_pins or {})
    infos: list[ArtifactInfo] = []
    inspections = []
    for role, path in (("preprocessor", files.preprocessor), ("model", files.model)):
        if path is None:
            continue
        checked: CheckedArtifact | None = None
        try:
            checked = check_artifact(path, trust, expected_sha256=expected.get(path.name))
            inspections.append(checked.inspection)
        except ArtifactError as exc:
            problems.append(exc.message)
        infos.append(_artifact_info(role, path, checked))
        del checked  # the file's bytes: not kept
    if not problems:
        try:
            check_compatibility(inspections, trust)
        except ArtifactError as exc:
            problems.append(exc.message)
    return VersionRecord(
        version=files.version,
        files=tuple(infos),
        problem=" ".join(problems) or None,
        fingerprint=fingerprint,
        demo=files.demo,
    )


class VersionCatalog:
    """The versions of one model directory, statically checked and cached by file fingerprint."""

    def __init__(self, directory: Path, trust: Trust, sha256_pins: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.trust = trust
        self.sha256_pins = dict(sha256_pins or {})
        self._cache: dict[str, VersionRecord] = {}
        self._lock = threading.Lock()

    def candidates(self) -> list[BundleFiles]:
        """The versions that could be served, oldest first (no file is opened)."""
        return bundle_candidates(self.directory)

    def versions(self) -> list[str]:
        """Version names, oldest first."""
        return [files.version for files in self.candidates()]

    def fingerprint(self, version: str) -> Fingerprint | None:
        """The version's current file fingerprint, or None when it is no longer in the directory."""
        for files in self.candidates():
            if files.version == version:
                return files.fingerprint()
        return None

    def records(self) -> list[VersionRecord]:
        """Every version, oldest first, checked again only when one of its files changed."""
        with self._lock:
            records = []
            for files in self.candidates():
                cached = self._cache.get(files.version)
                if cached is None or cached.fingerprint != files.fingerprint():
                    cached = inspect_version(files, self.trust, self.sha256_pins)
                    self._cache[files.version] = cached
                records.append(cached)
            for gone in set(self._cache) - {r.version for r in records}:
                del self._cache[gone]
            return records
