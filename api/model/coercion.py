"""Coerce one JSON value to its column's fitted value, exactly or not at all; the whole-column fast paths."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from api.model.schema import ColumnSpec

MISSING = float("nan")


class Rejected(Exception):
    """A value that cannot be used for its column; the message says what was expected."""


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def numeric(spec: ColumnSpec) -> Callable[[Any], float]:
    def coerce(value: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
            raise Rejected("expected a finite number")
        if value is None:
            if spec.nullable:
                return MISSING
            raise Rejected("expected a number; null is not accepted (the model does not impute it)")
        raise Rejected(f"expected a number{' or null' if spec.nullable else ''}, got {json_type(value)}")

    return coerce


# Integers a JSON parser is sure to read exactly (a float beyond 2**53 may have been a different
# integer in the text); the published schema gives the same bounds.
SAFE_INTEGERS = range(-(2**53), 2**53 + 1)


def _integer_from(value: Any) -> int | None:
    # Strict JSON types, as the published schema says: an integer (1.0 is the integer 1 in JSON
    # Schema too); never a boolean or a string, which a client sends only by mistake.
    number: int | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    # Beyond these bounds no fitted integer category can match (and numpy's int64 could not hold all).
    return number if number is not None and number in SAFE_INTEGERS else None


def _boolean_from(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _number_from(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "integer": _integer_from,
    "boolean": _boolean_from,
    "number": _number_from,
    "string": lambda v: v if isinstance(v, str) else None,
}


def categorical(spec: ColumnSpec) -> Callable[[Any], Any]:
    convert = _CONVERTERS[spec.value_type]
    known = set(spec.categories)
    shown = ", ".join(repr(c) for c in spec.categories[:20]) + (", …" if len(spec.categories) > 20 else "")
    expected = f"one of [{shown}] ({spec.value_type})"

    def coerce(value: Any) -> Any:
        if value is None:
            if spec.nullable:
                return MISSING
            raise Rejected(f"expected {expected}; null is not accepted")
        if isinstance(value, dict | list):
            raise Rejected(f"expected {expected}, got {json_type(value)}")
        converted = convert(value)
        if converted is None:
            raise Rejected(f"expected {expected}, got {json_type(value)} {value!r}")
        if converted not in known and spec.unknown_policy == "error":
            raise Rejected(f"unknown category {value!r}: expected {expected}")
        return converted

    return coerce


_PLAIN_TYPES: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "boolean": frozenset({bool}),
    "number": frozenset({float}),
}


def plain(spec: ColumnSpec, column: list[Any]) -> list[Any] | None:
    """The column as it is when every value already has the exact type it must have, else None.

    The common case costs one pass in C; anything unusual takes the value-by-value path.
    """
    types = set(map(type, column))
    if spec.kind == "numeric":
        allowed = {float, int, type(None)} if spec.nullable else {float, int}
        if not types <= allowed:
            return None
        if type(None) in types:
            return [MISSING if v is None else v for v in column]
        return column
    if not types <= _PLAIN_TYPES[spec.value_type]:
        return None
    if spec.value_type == "integer" and not all(v in SAFE_INTEGERS for v in column):
        return None
    if spec.unknown_policy == "error" and not set(column) <= set(spec.categories):
        return None
    return column


def all_known(column: list[Any], known: set[Any]) -> bool:
    try:
        return set(column) <= known
    except TypeError:  # an unhashable value cannot be a known category
        return False


def categorical_array(spec: ColumnSpec, values: list[Any]) -> np.ndarray:
    """Object column, or the numeric dtype the encoder was fitted on (its lookups compare dtypes)."""
    if spec.numeric_categories:
        has_missing = any(isinstance(v, float) and math.isnan(v) for v in values)
        if spec.value_type in ("integer", "boolean") and not has_missing:
            return np.array(values, dtype=np.int64 if spec.value_type == "integer" else np.bool_)
        return np.array(values, dtype=np.float64)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
