"""The symbolic walk of a pickle stream: every global it names, joblib's array layout, and recorded facts.

Opcodes are read with ``pickletools`` and a symbolic stack: literals are kept, everything callable
stays a name, so nothing the pickle names is ever imported or called here.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from api.errors import UnsafeArtifactError

WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")

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


@dataclass(frozen=True)
class Recorder:
    """A fact a library writes into its pickles (e.g. the release that saved them), read without unpickling.

    ``from_state`` sees each object built with state: the module of its class and its state's
    attributes. ``from_text`` sees each string or bytes literal longer than 64 characters.
    """

    label: str
    from_state: Callable[[str, Mapping[str, Any]], str | None] | None = None
    from_text: Callable[[str | bytes | bytearray], str | None] | None = None


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


class Walker:
    """Walks opcodes with a symbolic stack: literals are kept, everything callable stays a name."""

    def __init__(self, data: bytes, path: Path, recorders: tuple[Recorder, ...] = ()) -> None:
        self.data = data
        self.path = path
        self.file = io.BytesIO(data)
        self.protocol = 0
        self.globals: set[tuple[str, str]] = set()
        self.recorded: dict[str, set[str]] = {r.label: set() for r in recorders}
        self._from_state = [(r.label, r.from_state) for r in recorders if r.from_state is not None]
        self._from_text = [(r.label, r.from_text) for r in recorders if r.from_text is not None]
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
            if arg > pickle.HIGHEST_PROTOCOL:  # the unpickler would refuse it too: say so before it runs
                raise ValueError(f"unsupported pickle protocol {arg}")
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
        cls = inst.cls
        if cls is not None:
            for label, read in self._from_state:
                value = read(cls.module, inst.attrs)
                if value is not None:
                    self.recorded[label].add(value)

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
        """Let each recorder read a large literal (a LightGBM model text, an XGBoost model's JSON...)."""
        for label, read in self._from_text:
            found = read(value)
            if found is not None:
                self.recorded[label].add(found)


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
