"""Static inspection of pickle and joblib files: the globals they name and the versions they record."""

from __future__ import annotations

import bz2
import io
import lzma
import math
import pickletools
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np

from api.errors import ArtifactError, UnsafeArtifactError

WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
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
_LITERALS = frozenset({
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "INT", "BININT", "BININT1", "BININT2", "LONG",
    "LONG1", "LONG4", "FLOAT", "BINFLOAT",
})
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_SMALL_TUPLES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_UNVERIFIABLE = {"PERSID": "a persistent id", "BINPERSID": "a persistent id", "EXT1": "an extension code",
                 "EXT2": "an extension code", "EXT4": "an extension code", "NEXT_BUFFER": "an out-of-band buffer",
                 "READONLY_BUFFER": "an out-of-band buffer"}
# Callables whose first argument is the class of the object they build.
_CLASS_TAKING = frozenset({"_reconstructor", "__newobj__", "__newobj_ex__", "newObj", "_new_Index", "_reconstruct"})
_LIGHTGBM_FORMAT = re.compile(r"^version=(v\d+)$", re.MULTILINE)
_XGBOOST_JSON = re.compile(rb'"version"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)')
_UBJSON_INTS = {b"i": (1, True), b"U": (1, False), b"I": (2, True), b"l": (4, True), b"L": (8, True)}


@dataclass(frozen=True)
class PickleInspection:
    """What a pickle or joblib file references and records, read without unpickling it."""

    path: Path
    container: Literal["joblib", "pickle"]
    compression: str | None
    protocol: int
    globals: frozenset[tuple[str, str]]
    sklearn_versions: frozenset[str]
    numpy_namespace: str | None
    lightgbm_model_format: str | None
    xgboost_version: str | None
    # Where joblib's array payloads start and end in the (decompressed) stream; the loader
    # checks every array read against these, so scan and load cannot disagree silently.
    array_spans: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


class _Obj:
    """An object the unpickler would build: what builds it, from what, and the state set on it."""

    __slots__ = ("args", "attrs", "factory", "items", "states")

    def __init__(self, factory: Any, args: Any) -> None:
        self.factory = factory
        self.args = args
        self.states: list[Any] = []
        self.attrs: dict[str, Any] = {}
        self.items: list[Any] = []

    @property
    def cls(self) -> _Global | None:
        factory, args = self.factory, self.args
        if isinstance(factory, _Global) and factory.name in _CLASS_TAKING and isinstance(args, tuple) and args:
            factory = args[0]
        return factory if isinstance(factory, _Global) else None


class _StreamState:
    """The stack, mark stack and memo of one pickle stream, kept as the unpickler keeps them."""

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.frame_end = 0

    def pop_mark(self) -> list[Any]:
        items, self.stack = self.stack, self.marks.pop()
        return items


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


def inspect_pickle(path: Path) -> PickleInspection:
    """Inspect a pickle or joblib file without unpickling it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path.name}: {exc.strerror}") from exc
    stream, compression = unwrap(raw, path)
    return inspect_stream(stream, path=path, compression=compression)


def inspect_stream(stream: bytes, *, path: Path, compression: str | None = None) -> PickleInspection:
    """Inspect an uncompressed pickle stream, following joblib's interleaved array layout."""
    walker = _Walker(stream, path)
    try:
        walker.walk(top=True)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        # genops raises ValueError on garbage and truncation; the rest is a stack or memo misuse
        # that the real unpickler would also choke on.
        raise ArtifactError(f"{path.name} is not a valid pickle ({type(exc).__name__}: {exc})") from exc
    modules = {module for module, _ in walker.globals}
    namespace = next((ns for ns in ("numpy._core", "numpy.core") if any(_under(m, ns) for m in modules)), None)
    formats = sorted(walker.lightgbm_formats, key=lambda v: int(v[1:]))
    return PickleInspection(
        path=path,
        container="joblib" if compression or WRAPPER in walker.globals else "pickle",
        compression=compression,
        protocol=walker.protocol,
        globals=frozenset(walker.globals),
        sklearn_versions=frozenset(walker.sklearn_versions),
        numpy_namespace=namespace,
        lightgbm_model_format=formats[-1] if formats else None,
        xgboost_version=max(walker.xgboost_versions, default=None),
        array_spans=tuple(walker.spans),
    )


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class _Walker:
    """Walks opcodes with a symbolic stack: literals are kept, everything callable stays a name."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.file = io.BytesIO(data)
        self.protocol = 0
        self.globals: set[tuple[str, str]] = set()
        self.sklearn_versions: set[str] = set()
        self.lightgbm_formats: set[str] = set()
        self.xgboost_versions: set[str] = set()
        self.spans: list[tuple[int, int]] = []
        self.dtypes: dict[int, np.dtype[Any]] = {}

    def refuse(self, reason: str, pos: int) -> UnsafeArtifactError:
        return UnsafeArtifactError(f"{self.path.name}: {reason} at byte {pos}; refusing to unpickle it")

    def walk(self, *, top: bool) -> None:
        """Walk one stream to its STOP; only the top-level stream has joblib array payloads."""
        f = _StreamState()
        for opcode, value, at in pickletools.genops(self.file):
            name, arg, pos = opcode.name, cast(Any, value), at or 0
            if name in _LITERALS:
                f.stack.append(arg)
                if isinstance(arg, str | bytes | bytearray) and len(arg) > 64:
                    self.note_blob(arg)
            elif name in _CONSTANTS:
                f.stack.append(_CONSTANTS[name])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                f.memo[int(arg)] = f.stack[-1]
            elif name == "MEMOIZE":
                f.memo[len(f.memo)] = f.stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                f.stack.append(f.memo[int(arg)])
            elif name in ("GLOBAL", "INST"):
                module, qualname = self.lines_after(pos)
                self.globals.add((module, qualname))
                if name == "GLOBAL":
                    f.stack.append(_Global(module, qualname))
                else:
                    args = tuple(f.pop_mark())
                    f.stack.append(_Obj(_Global(module, qualname), args))
            elif name == "STACK_GLOBAL":
                qualname, module = f.stack.pop(), f.stack.pop()
                if not (isinstance(module, str) and isinstance(qualname, str)):
                    raise self.refuse("STACK_GLOBAL takes its module/name from a computed value", pos)
                self.globals.add((module, qualname))
                f.stack.append(_Global(module, qualname))
            elif name in _UNVERIFIABLE:
                raise self.refuse(f"the stream uses {_UNVERIFIABLE[name]}, which cannot be verified", pos)
            elif name == "STOP":
                if not top and self.file.tell() < f.frame_end:
                    raise self.refuse("a nested pickle ends inside a frame", pos)
                return
            else:
                self.structure(name, arg, f, top, pos)
        raise ValueError("pickle ended without STOP")

    def structure(self, name: str, arg: Any, f: _StreamState, top: bool, pos: int) -> None:
        """Containers, calls and BUILD, which are where objects (and joblib arrays) come from."""
        stack = f.stack
        if name == "MARK":
            f.marks.append(stack)
            f.stack = []
        elif name == "FRAME":
            f.frame_end = self.file.tell() + arg
        elif name == "PROTO":
            self.protocol = max(self.protocol, arg)
        elif name == "POP":
            _ = stack.pop() if stack else f.pop_mark()
        elif name == "POP_MARK":
            f.pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in _SMALL_TUPLES:
            size = _SMALL_TUPLES[name]
            if len(stack) < size:
                raise IndexError("tuple from an empty stack")
            items = stack[len(stack) - size:]
            del stack[len(stack) - size:]
            stack.append(tuple(items))
        elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
            items = f.pop_mark()  # before touching f.stack: popping the mark replaces it
            built = {"TUPLE": tuple, "LIST": list, "FROZENSET": frozenset}.get(name)
            f.stack.append(built(items) if built else dict(zip(items[::2], items[1::2], strict=True)))
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            stack.append({"EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_SET": set}[name]())
        elif name in ("APPEND", "APPENDS", "ADDITEMS"):
            items = [stack.pop()] if name == "APPEND" else f.pop_mark()
            _add(f.stack[-1], items)
        elif name in ("SETITEM", "SETITEMS"):
            items = [stack.pop(-2), stack.pop()] if name == "SETITEM" else f.pop_mark()
            _add(f.stack[-1], list(zip(items[::2], items[1::2], strict=True)))
        elif name in ("REDUCE", "NEWOBJ"):
            args = stack.pop()
            stack.append(_Obj(stack.pop(), args))
        elif name == "NEWOBJ_EX":
            kwargs, args = stack.pop(), stack.pop()
            stack.append(_Obj(stack.pop(), (args, kwargs)))
        elif name == "OBJ":
            items = f.pop_mark()
            f.stack.append(_Obj(items[0], tuple(items[1:])))  # f.stack is the one below the mark now
        elif name == "BUILD":
            self.build(stack.pop(), stack[-1])
            if top and isinstance(stack[-1], _Obj) and stack[-1].cls == _Global(*WRAPPER):
                stack[-1] = self.read_array(stack[-1], f, pos)
        else:
            raise ValueError(f"unsupported opcode {name}")

    def build(self, state: Any, inst: Any) -> None:
        if not isinstance(inst, _Obj):
            return
        inst.states.append(state)
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for part in parts:
            if isinstance(part, dict):
                inst.attrs.update((k, v) for k, v in part.items() if isinstance(k, str))
        version = inst.attrs.get("_sklearn_version")
        cls = inst.cls
        # sklearn itself only checks the version of classes from sklearn modules; so do we.
        if isinstance(version, str) and cls is not None and _under(cls.module, "sklearn"):
            self.sklearn_versions.add(version)

    def read_array(self, wrapper: _Obj, f: _StreamState, pos: int) -> _Obj:
        """Skip (or walk) what NumpyArrayWrapper.read_array reads right after the wrapper's BUILD."""
        start = self.file.tell()
        if start < f.frame_end:
            raise self.refuse("joblib array data is announced inside a pickle frame", pos)
        dtype = self.dtype(wrapper.attrs.get("dtype"), pos)
        if dtype.hasobject:
            self.walk(top=False)  # object arrays are a nested pickle stream
        else:
            shape = wrapper.attrs.get("shape")
            if not (isinstance(shape, tuple | list) and all(isinstance(n, int) and n >= 0 for n in shape)):
                raise self.refuse("a joblib array has no valid shape", pos)
            end = start
            if wrapper.attrs.get("numpy_array_alignment_bytes") is not None:  # joblib >= 1.2 pads
                padding = self.data[start:start + 1]
                if not padding:
                    raise ValueError("file ends before joblib array padding")
                end += 1 + padding[0]
            if dtype.itemsize == 0:
                raise self.refuse("a joblib array has a zero-size dtype", pos)
            end += math.prod(shape) * dtype.itemsize
            if end > len(self.data):
                raise ValueError(f"file ends inside a joblib array (needs {end} bytes, has {len(self.data)})")
            self.file.seek(end)
        self.spans.append((start, self.file.tell()))
        return _Obj(_Global("numpy", "ndarray"), ())

    def dtype(self, value: Any, pos: int) -> np.dtype[Any]:
        """Rebuild a pickled numpy dtype from its literal arguments and state (numpy.dtype only)."""
        if not isinstance(value, _Obj) or value.factory != _Global("numpy", "dtype"):
            raise self.refuse("a joblib array's dtype is not a plain numpy.dtype", pos)
        if id(value) not in self.dtypes:
            args = value.args
            # copy=False would hand back numpy's shared builtin dtype, which BUILD then mutates.
            if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[0], str) and args[2] is True):
                raise self.refuse("a joblib array's dtype has unexpected arguments", pos)
            dtype = np.dtype(args[0], bool(args[1]), True)
            for state in value.states:
                # numpy's C __setstate__ answers a malformed state with SystemError; check the shape first.
                if not (isinstance(state, tuple) and len(state) in (8, 9) and isinstance(state[0], int)):
                    raise self.refuse("a joblib array's dtype has a malformed state", pos)
                try:
                    dtype.__setstate__(self.literal(state, pos))  # type: ignore[attr-defined]
                except SystemError as exc:
                    raise ValueError(f"numpy rejects the dtype state: {exc}") from exc
            self.dtypes[id(value)] = dtype
        return self.dtypes[id(value)]

    def literal(self, value: Any, pos: int) -> Any:
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return value
        if isinstance(value, tuple | list):
            return type(value)(self.literal(v, pos) for v in value)
        if isinstance(value, dict):
            return {self.literal(k, pos): self.literal(v, pos) for k, v in value.items()}
        return self.dtype(value, pos)

    def lines_after(self, pos: int) -> tuple[str, str]:
        """GLOBAL/INST operands, split exactly as the unpickler reads them (two UTF-8 lines)."""
        first = self.data.index(b"\n", pos + 1)
        second = self.data.index(b"\n", first + 1)
        return self.data[pos + 1:first].decode("utf-8"), self.data[first + 1:second].decode("utf-8")

    def note_blob(self, value: str | bytes | bytearray) -> None:
        """Record the LightGBM model-text format or the XGBoost version a large literal carries."""
        if isinstance(value, str) and value.startswith("tree\n"):
            match = _LIGHTGBM_FORMAT.search(value, 0, 512)
            if match:
                self.lightgbm_formats.add(match.group(1))
        elif value[:1] in ("{", b"{"):
            blob = value.encode("latin-1", "replace") if isinstance(value, str) else bytes(value)
            version = _xgboost_version(blob)
            if version:
                self.xgboost_versions.add(version)


def _add(target: Any, items: list[Any]) -> None:
    """APPEND(S)/ADDITEMS/SETITEM(S) onto a list, set or dict; on a built object, just remember."""
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, set | dict):
        target.update(items)
    elif isinstance(target, _Obj):
        target.items.extend(items)
    else:
        raise TypeError(f"cannot add items to {type(target).__name__}")


def _xgboost_version(blob: bytes) -> str | None:
    """The [major, minor, patch] an XGBoost model records, from its JSON or UBJSON form."""
    match = _XGBOOST_JSON.search(blob)
    if match:
        return ".".join(m.decode() for m in match.groups())
    at = blob.find(b"version[")
    if at < 0:
        return None
    pos = at + len(b"version[")
    parts: list[str] = []
    typed: bytes | None = None
    try:
        if blob[pos:pos + 1] == b"$":
            typed, pos = blob[pos + 1:pos + 2], pos + 2
        count = 3
        if blob[pos:pos + 1] == b"#":
            count, pos = _ubjson_int(blob, pos + 2, blob[pos + 1:pos + 2])
        while len(parts) < min(count, 3):
            marker = typed or blob[pos:pos + 1]
            value, pos = _ubjson_int(blob, pos if typed else pos + 1, marker)
            parts.append(str(value))
    except KeyError:
        return None
    return ".".join(parts) if len(parts) == 3 else None


def _ubjson_int(blob: bytes, pos: int, marker: bytes) -> tuple[int, int]:
    size, signed = _UBJSON_INTS[marker]
    return int.from_bytes(blob[pos:pos + size], "big", signed=signed), pos + size
