"""Turn JSON records into a validated column batch, coercing only what maps exactly to a fitted value."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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


def _integer_from(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    return None


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

    def validate(self, records: Sequence[Any], *, batch: bool) -> ValidatedBatch:
        """Validate every record; raise one 422 listing each bad field (row and name)."""
        size = len(records)
        values: dict[str, list[Any]] = {spec.name: [None] * size for spec in self.schema.columns}
        warnings: list[list[str]] = [[] for _ in range(size)]
        errors: list[dict[str, Any]] = []
        for row, record in enumerate(records):
            prefix: list[Any] = ["body", "instances", row] if batch else ["body"]
            if not isinstance(record, dict):
                errors.append(
                    _error(prefix, None, row if batch else None, f"expected a JSON object, got {_json_type(record)}")
                )
                continue
            for spec, coerce in self._coercers:
                if spec.name not in record:
                    errors.append(_error(prefix, spec.name, row if batch else None, "field required", "missing"))
                    continue
                try:
                    values[spec.name][row] = coerce(record[spec.name])
                except _Rejected as exc:
                    errors.append(_error(prefix, spec.name, row if batch else None, str(exc)))
            extra = [key for key in record if key not in self._known_fields]
            if extra and self.forbid_extra:
                for key in extra:
                    errors.append(_error(prefix, key, row if batch else None, "unexpected field", "extra_forbidden"))
            elif extra:
                warnings[row].append(f"ignored fields not used by the model: {', '.join(sorted(extra))}")
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        if errors:
            raise InvalidInputError(_summary(errors), details=errors[:MAX_REPORTED_ERRORS])
        return self._assemble(records, values, warnings)

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
