"""Static inspection of pickle and joblib files: the globals they name and the facts they record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from api.bundle.container import unwrap
from api.bundle.opcodes import WRAPPER, Recorder, Walker
from api.errors import ArtifactError

__all__ = ["WRAPPER", "PickleInspection", "Recorder", "inspect_pickle", "inspect_stream"]


@dataclass(frozen=True)
class PickleInspection:
    """What a pickle or joblib file references and records, read without unpickling it."""

    path: Path
    container: Literal["joblib", "pickle"]
    compression: str | None
    protocol: int
    globals: frozenset[tuple[str, str]]
    numpy_namespace: str | None
    # What each library's Recorder found, by its label (e.g. {"sklearn": {"1.1.3"}}).
    recorded: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Where joblib's array payloads start and end in the (decompressed) stream; the loader
    # checks every array read against these, so scan and load cannot disagree silently.
    array_spans: tuple[tuple[int, int], ...] = ()


def inspect_pickle(path: Path, recorders: tuple[Recorder, ...] = ()) -> PickleInspection:
    """Inspect a pickle or joblib file without unpickling it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path.name}: {exc.strerror}") from exc
    stream, compression = unwrap(raw, path)
    return inspect_stream(stream, path=path, compression=compression, recorders=recorders)


def inspect_stream(
    stream: bytes, *, path: Path, compression: str | None = None, recorders: tuple[Recorder, ...] = ()
) -> PickleInspection:
    """Inspect an uncompressed pickle stream, following joblib's interleaved array layout."""
    walker = Walker(stream, path, recorders)
    try:
        walker.walk(top=True)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        # genops raises ValueError on garbage and truncation; the rest is a stack or memo misuse
        # that the real unpickler would also choke on.
        raise ArtifactError(f"{path.name} is not a valid pickle ({type(exc).__name__}: {exc})") from exc
    modules = {module for module, _ in walker.globals}
    namespace = next((ns for ns in ("numpy._core", "numpy.core") if any(_under(m, ns) for m in modules)), None)
    return PickleInspection(
        path=path,
        container="joblib" if compression or WRAPPER in walker.globals else "pickle",
        compression=compression,
        protocol=walker.protocol,
        globals=frozenset(walker.globals),
        numpy_namespace=namespace,
        recorded={label: frozenset(values) for label, values in walker.recorded.items() if values},
        array_spans=tuple(walker.spans),
    )


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")
