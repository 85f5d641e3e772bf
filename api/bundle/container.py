"""The pickle stream inside an artifact file: plain, or joblib-compressed (inflated in memory, bounded)."""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from api.errors import ArtifactError

# Decompression-bomb guard: no real model bundle comes near this.
MAX_STREAM_BYTES = 4 << 30


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...


# joblib's magic prefixes (joblib/compressor.py). Compressed files are inflated in memory with
# the stdlib, so the scan and the load see the very same bytes.
_COMPRESSIONS: tuple[tuple[bytes, str, Callable[[], _Decompressor] | None], ...] = (
    (b"ZF", "joblib<0.10 zfile", None),
    (b"\x04\x22\x4d\x18", "lz4", None),
    (b"\x78", "zlib", zlib.decompressobj),
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(wbits=31)),
    (b"BZ", "bz2", bz2.BZ2Decompressor),
    (b"\xfd7zXZ", "xz", lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ)),
    (b"\x5d\x00", "lzma", lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE)),
)


def unwrap(raw: bytes, path: Path) -> tuple[bytes, str | None]:
    """The pickle stream inside a file's bytes and the joblib compression it used, if any."""
    for prefix, name, factory in _COMPRESSIONS:
        if raw.startswith(prefix):
            if factory is None:
                raise ArtifactError(
                    f"{path.name} is {name}-compressed, which is not supported; re-save it with "
                    "joblib.dump(obj, path) or compress=('zlib'|'gzip'|'bz2'|'xz', level)"
                )
            return _inflate(raw, factory, path, name), name
    return raw, None


def _inflate(raw: bytes, factory: Callable[[], _Decompressor], path: Path, name: str) -> bytes:
    out = bytearray()
    data = raw
    while data:  # joblib reads concatenated streams, so do we
        decompressor = factory()
        try:
            out += decompressor.decompress(data, MAX_STREAM_BYTES + 1 - len(out))
        except (zlib.error, lzma.LZMAError, OSError, EOFError) as exc:
            raise ArtifactError(f"{path.name} is not a valid {name}-compressed joblib file: {exc}") from exc
        if len(out) > MAX_STREAM_BYTES:
            raise ArtifactError(f"{path.name} inflates beyond {MAX_STREAM_BYTES} bytes; refusing it")
        if not decompressor.eof:
            raise ArtifactError(f"{path.name} is a truncated {name}-compressed joblib file")
        data = decompressor.unused_data
    return bytes(out)
