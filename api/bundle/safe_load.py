"""Unpickle an artifact only after its hash, its globals and its joblib layout have been checked."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

from api.bundle.allowlist import Allowlist
from api.bundle.container import unwrap
from api.bundle.pickle_scan import PickleInspection, inspect_stream
from api.bundle.trust import Trust
from api.errors import ArtifactError, UnsafeArtifactError

# joblib < 1.6 reads object arrays with a bare pickle.load, which bypasses find_class.
MIN_JOBLIB = (1, 6)
# What unpickling a damaged (but allowlisted) stream raises; anything else is a bug to surface.
_LOAD_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    LookupError,
    ImportError,
    OverflowError,
    MemoryError,
)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CheckedArtifact:
    """A pickle file read once, hashed and inspected, that passed the allowlist: safe to unpickle."""

    path: Path
    sha256: str
    stream: bytes
    inspection: PickleInspection
    allowlist: Allowlist  # the one it passed: unpickling enforces the same in find_class


def check_artifact(path: Path, trust: Trust, *, expected_sha256: str | None = None) -> CheckedArtifact:
    """Read, hash-check, inspect and allowlist-check a pickle or joblib file, without unpickling it."""
    try:
        raw = path.read_bytes()  # read once: hash, scan and load all see these bytes
    except OSError as exc:
        raise ArtifactError(f"cannot read {path.name}: {exc.strerror}") from exc
    actual = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256.strip().lower():
        raise UnsafeArtifactError(f"{path.name} has SHA-256 {actual}, expected {expected_sha256}; refusing it")
    stream, compression = unwrap(raw, path)
    inspection = inspect_stream(stream, path=path, compression=compression, recorders=trust.recorders)
    refused = trust.allowlist.refused(inspection.globals)
    if refused:
        names = ", ".join(f"{module}.{name}" for module, name in refused)
        raise UnsafeArtifactError(
            f"{path.name} references globals outside the allowlist: {names}; refusing to unpickle it "
            "(a class of your own that you trust can be allowed by name: EXTRA_ALLOWED_GLOBALS)"
        )
    if inspection.container == "joblib":
        _require_joblib(path)
    return CheckedArtifact(path, actual, stream, inspection, trust.allowlist)


def unpickle_artifact(artifact: CheckedArtifact) -> object:
    """Unpickle a checked artifact with the allowlist enforced again in find_class."""
    try:
        return _unpickle(artifact)
    except _LOAD_ERRORS as exc:
        raise ArtifactError(f"{artifact.path.name} could not be unpickled: {type(exc).__name__}: {exc}") from exc


def load_artifact(path: Path, trust: Trust, *, expected_sha256: str | None = None) -> object:
    """Hash-check, inspect, allowlist-check, then unpickle a pickle or joblib file."""
    return unpickle_artifact(check_artifact(path, trust, expected_sha256=expected_sha256))


def _require_joblib(path: Path) -> None:
    installed = tuple(int(part) for part in re.findall(r"\d+", joblib.__version__)[:2])
    if installed < MIN_JOBLIB:
        raise UnsafeArtifactError(
            f"{path.name} is a joblib file and joblib {joblib.__version__} < 1.6 reads object arrays "
            "with a bare pickle.load that no allowlist can restrict; install joblib>=1.6"
        )


def _unpickle(artifact: CheckedArtifact) -> object:
    buffer = io.BytesIO(artifact.stream)
    if artifact.inspection.container == "pickle":
        return _RestrictedUnpickler(buffer, artifact.path, artifact.allowlist).load()
    unpickler = _RestrictedNumpyUnpickler(buffer, artifact.inspection, artifact.allowlist)
    obj = unpickler.load()
    unpickler.check_all_arrays_read()
    return obj


class _RestrictedUnpickler(pickle.Unpickler):
    """The C unpickler, with find_class limited to the allowlist."""

    def __init__(self, file: io.BytesIO, path: Path, allowlist: Allowlist) -> None:
        super().__init__(file)
        self._path = path
        self._allowlist = allowlist

    def find_class(self, module: str, name: str) -> Any:
        return _resolve(self._allowlist, module, name, self._path)


class _RestrictedNumpyUnpickler(NumpyUnpickler):  # type: ignore[misc]
    """joblib's unpickler, limited to the allowlist, reading arrays only where the scan found them."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, file: io.BytesIO, inspection: PickleInspection, allowlist: Allowlist) -> None:
        super().__init__(str(inspection.path), file, ensure_native_byte_order=True)
        self._path = inspection.path
        self._allowlist = allowlist
        self._spans = list(inspection.array_spans)
        self._read = 0

    def find_class(self, module: str, name: str) -> Any:
        # Also used for object arrays: joblib >= 1.6 routes their nested unpickler through here.
        return _resolve(self._allowlist, module, name, self._path)

    def load_build(self) -> None:
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        wrapper = self.stack[-1]
        if not isinstance(wrapper, NumpyArrayWrapper):
            return
        start = self.file_handle.tell()
        expected = self._spans[self._read] if self._read < len(self._spans) else None
        if expected is None or expected[0] != start:
            raise self._desync(start)
        self.stack[-1] = wrapper.read(self, self.ensure_native_byte_order)
        if self.file_handle.tell() != expected[1]:
            raise self._desync(start)
        self._read += 1

    dispatch[pickle.BUILD[0]] = load_build

    def check_all_arrays_read(self) -> None:
        if self._read != len(self._spans):
            raise self._desync(self.file_handle.tell())

    def _desync(self, pos: int) -> UnsafeArtifactError:
        return UnsafeArtifactError(
            f"{self._path.name}: joblib array data at byte {pos} does not match the inspected layout; refusing it"
        )


def _resolve(allowlist: Allowlist, module: str, name: str, path: Path) -> Any:
    try:
        return allowlist.resolve(module, name)
    except UnsafeArtifactError as exc:
        raise UnsafeArtifactError(f"{path.name}: {exc.message}") from None
