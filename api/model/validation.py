"""Turn JSON records into a validated column batch, coercing only what maps exactly to a fitted value."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from api.errors import InvalidInputError
from api.model.columns import ColumnBatch
from api.model.schema import ColumnSpec, InputSchema

MAX_REPORTED_ERRORS = 50
_MISSING = float("nan")


class _Rejected(Exception):
    """A value that cannot be used for its column; the message says what was expected."""


@dataclass
class ValidatedBatch:
    """Rows ready for inference: the columns, echoed ids, and per-row warnings."""

    columns: ColumnBatch
    ids: list[Any] | None
    warnings: list[list[str]]
    size: int
    unknown: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _numeric(spec: ColumnSpec) -> Callable[[Any], float]:
    def coerce(value: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
            raise _Rejected("expected a finite number")
        if value is None:
            if spec.nullable:
                return _MISSING
            raise _Rejected("expected a number; null is not accepted (the model does not impute it)")
        raise _Rejected(f"expected a number{' or null' if spec.nullable else ''}, got {_json_type(value)}")

    return coerce


_INT64 = range(-(2**63), 2**63)


def _integer_from(value: Any) -> int | None:
    number: int | None = None
    if isinstance(value, bool):
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    # Beyond int64 no fitted integer category can match, and numpy could not hold it.
    return number if number is not None and number in _INT64 else None


def _boolean_from(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _number_from(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "integer": _integer_from,
    "boolean": _boolean_from,
    "number": _number_from,
    "string": lambda v: v if isinstance(v, str) else None,
}


def _categorical(spec: ColumnSpec) -> Callable[[Any], Any]:
    convert = _CONVERTERS[spec.value_type]
    known = set(spec.categories)
    shown = ", ".join(repr(c) for c in spec.categories[:20]) + (", …" if len(spec.categories) > 20 else "")
    expected = f"one of [{shown}] ({spec.value_type})"

    def coerce(value: Any) -> Any:
        if value is None:
            if spec.nullable:
                return _MISSING
            raise _Rejected(f"expected {expected}; null is not accepted")
        if isinstance(value, dict | list):
            raise _Rejected(f"expected {expected}, got {_json_type(value)}")
        converted = convert(value)
        if converted is None:
            raise _Rejected(f"expected {expected}, got {_json_type(value)} {value!r}")
        if converted not in known and spec.unknown_policy == "error":
            raise _Rejected(f"unknown category {value!r}: expected {expected}")
        return converted

    return coerce


class RecordValidator:
    """Validates records against one schema; every lookup is prepared once, at model load."""

    def __init__(self, schema: InputSchema, *, id_field: str | None, forbid_extra: bool) -> None:
        self.schema = schema
        self.id_field = id_field
        self.forbid_extra = forbid_extra
        self._coercers = [
            (spec, _categorical(spec) if spec.kind == "categorical" else _numeric(spec)) for spec in schema.columns
        ]
        self._known_fields = {spec.name for spec in schema.columns} | ({id_field} if id_field else set())
        self._category_sets = {s.name: set(s.categories) for s in schema.columns if s.kind == "categorical"}
        self._required = frozenset(spec.name for spec in schema.columns)

    def validate(self, records: Sequence[Any], *, batch: bool) -> ValidatedBatch:
        """Validate every record; raise one 422 listing each bad field (row and name)."""
        size = len(records)
        warnings: list[list[str]] = [[] for _ in range(size)]
        errors: list[dict[str, Any]] = []
        raw = self._raw_columns(records)
        if raw is None:
            errors.extend(self._shape_errors(records, batch))
        if raw is None or not self._only_known_fields(records):
            extra = set().union(*(r.keys() for r in records if type(r) is dict)) - self._known_fields
            if extra:
                errors.extend(self._extra_fields(records, batch, warnings))
        values: dict[str, list[Any]] = {}
        for spec, coerce in self._coercers:
            plain = _plain(spec, raw[spec.name]) if raw is not None else None
            values[spec.name] = plain if plain is not None else self._coerce_each(spec, coerce, records, batch, errors)
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        if errors:
            errors.sort(key=lambda e: e.get("row", 0))
            raise InvalidInputError(_summary(errors), details=errors[:MAX_REPORTED_ERRORS])
        return self._assemble(records, values, warnings)

    def _only_known_fields(self, records: Sequence[Any]) -> bool:
        """True when no record holds a field beyond the model's and the id (C-level passes only).

        Every record already holds every required field, so equal key counts mean none holds more.
        """
        expected = len(self._required)
        if self.id_field and self.id_field not in self._required:
            if sum(map(operator.contains, records, repeat(self.id_field))) != len(records):
                return False  # some records lack the id: let the careful path count
            expected += 1
        return sum(map(len, records)) == expected * len(records)

    def _raw_columns(self, records: Sequence[Any]) -> dict[str, list[Any]] | None:
        """Each field's values in record order; None unless every record is an object with every field."""
        if set(map(type, records)) != {dict}:
            return None
        try:
            return {spec.name: list(map(itemgetter(spec.name), records)) for spec in self.schema.columns}
        except KeyError:
            return None

    def _coerce_each(
        self,
        spec: ColumnSpec,
        coerce: Callable[[Any], Any],
        records: Sequence[Any],
        batch: bool,
        errors: list[dict[str, Any]],
    ) -> list[Any]:
        """The careful path: coerce value by value, recording every rejected field."""
        column: list[Any] = [None] * len(records)
        for row, record in enumerate(records):
            if type(record) is not dict or spec.name not in record:
                continue  # reported by _shape_errors
            try:
                column[row] = coerce(record[spec.name])
            except _Rejected as exc:
                prefix: list[Any] = ["body", "instances", row] if batch else ["body"]
                errors.append(_error(prefix, spec.name, row if batch else None, str(exc)))
        return column

    def _shape_errors(self, records: Sequence[Any], batch: bool) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        for row, record in enumerate(records):
            prefix: list[Any] = ["body", "instances", row] if batch else ["body"]
            where = row if batch else None
            if not isinstance(record, dict):
                errors.append(_error(prefix, None, where, f"expected a JSON object, got {_json_type(record)}"))
                continue
            for spec in self.schema.columns:
                if spec.name not in record:
                    errors.append(_error(prefix, spec.name, where, "field required", "missing"))
        return errors

    def _extra_fields(self, records: Sequence[Any], batch: bool, warnings: list[list[str]]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                continue
            extra = [key for key in record if key not in self._known_fields]
            if extra and self.forbid_extra:
                prefix: list[Any] = ["body", "instances", row] if batch else ["body"]
                errors.extend(
                    _error(prefix, key, row if batch else None, "unexpected field", "extra_forbidden") for key in extra
                )
            elif extra:
                warnings[row].append(f"ignored fields not used by the model: {', '.join(sorted(extra))}")
        return errors

    def _assemble(
        self, records: Sequence[Any], values: dict[str, list[Any]], warnings: list[list[str]]
    ) -> ValidatedBatch:
        columns: dict[str, np.ndarray] = {}
        unknown: dict[str, int] = {}
        missing: dict[str, int] = {}
        for spec in self.schema.columns:
            column = values[spec.name]
            if spec.kind == "numeric":
                array = np.array(column, dtype=np.float64)
                missing[spec.name] = int(np.isnan(array).sum())
            else:
                array = _categorical_array(spec, column)
                known = self._category_sets[spec.name]
                if _all_known(column, known):
                    columns[spec.name] = array
                    continue
                for row, value in enumerate(column):
                    if isinstance(value, float) and math.isnan(value):
                        missing[spec.name] = missing.get(spec.name, 0) + 1
                    elif value not in known:
                        unknown[spec.name] = unknown.get(spec.name, 0) + 1
                        warnings[row].append(
                            f"{spec.name}: {value!r} is not a category seen in training; "
                            f"encoded per the encoder's handle_unknown={spec.unknown_policy!r}"
                        )
            columns[spec.name] = array
        for name in self.schema.passthrough_nulls:
            columns[name] = np.full(len(records), _MISSING, dtype=object)
        ids = [record.get(self.id_field) for record in records] if self.id_field else None
        return ValidatedBatch(
            columns=columns, ids=ids, warnings=warnings, size=len(records), unknown=unknown, missing=missing
        )


_PLAIN_TYPES: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "boolean": frozenset({bool}),
    "number": frozenset({float}),
}


def _plain(spec: ColumnSpec, column: list[Any]) -> list[Any] | None:
    """The column as it is when every value already has the exact type it must have, else None.

    The common case costs one pass in C; anything unusual takes the value-by-value path.
    """
    types = set(map(type, column))
    if spec.kind == "numeric":
        allowed = {float, int, type(None)} if spec.nullable else {float, int}
        if not types <= allowed:
            return None
        if type(None) in types:
            return [_MISSING if v is None else v for v in column]
        return column
    if not types <= _PLAIN_TYPES[spec.value_type]:
        return None
    if spec.value_type == "integer" and not all(v in _INT64 for v in column):
        return None
    if spec.unknown_policy == "error" and not set(column) <= set(spec.categories):
        return None
    return column


def _all_known(column: list[Any], known: set[Any]) -> bool:
    try:
        return set(column) <= known
    except TypeError:  # an unhashable value cannot be a known category
        return False


def _categorical_array(spec: ColumnSpec, values: list[Any]) -> np.ndarray:
    """Object column, or the numeric dtype the encoder was fitted on (its lookups compare dtypes)."""
    if spec.numeric_categories:
        has_missing = any(isinstance(v, float) and math.isnan(v) for v in values)
        if spec.value_type in ("integer", "boolean") and not has_missing:
            return np.array(values, dtype=np.int64 if spec.value_type == "integer" else np.bool_)
        return np.array(values, dtype=np.float64)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _error(prefix: list[Any], name: str | None, row: int | None, message: str, kind: str = "invalid") -> dict[str, Any]:
    detail: dict[str, Any] = {"loc": [*prefix, name] if name else prefix, "msg": message, "type": kind}
    if name is not None:
        detail["field"] = name
    if row is not None:
        detail["row"] = row
    return detail


def _summary(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    where = f"row {first['row']}, " if "row" in first else ""
    what = f"field '{first['field']}'" if "field" in first else "record"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid input at {where}{what}: {first['msg']}{more}"
