"""File cells → the values a JSON client would send, so the API's validation rules apply unchanged.

A CSV has no null: its blank cell is the file's way to say "missing". A cell that is empty or
only whitespace becomes null (the API's missing value) — accepted where the fitted pipeline
imputes the column (the loader proved it: ``ColumnSpec.nullable``), rejected with the field named
where it does not. A numeric column's other text is parsed with Python's ``float`` (correctly
rounded, so ``"29.85"`` is the same double a JSON client sends); text that is not a finite number
stays text and is rejected by validation like a string sent to /predict. A categorical cell is
read as the JSON value it spells for the column's fitted type (``1`` in an integer column is the
number 1, ``true`` in a boolean one the boolean) and then validated as JSON is; text that spells
no such value stays text, and validation rejects it naming the field. Parquet cells arrive typed;
a NaN in a numeric column is missing, as null, and ±inf is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from api.model.coercion import Rejected, categorical
from api.model.schema import ColumnSpec


def _numeric_cell(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return value  # validation names the field and says a number was expected
        return number if math.isfinite(number) else value  # "nan", "inf": text, refused like any other
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else repr(value)  # Parquet's NaN is missing; ±inf is refused
    return value


def _categorical_cell(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def column_values(spec: ColumnSpec, values: Sequence[Any]) -> list[Any]:
    """One column's cells as JSON values for ``spec``, each distinct cell converted once.

    Categorical cells are also put through validation's own coercion for the column (so ``"1"``
    becomes the fitted integer 1 once per distinct value, not once per row); a cell it refuses is
    left as it is, for validation to reject with its own message.
    """
    if spec.kind == "numeric" and all(type(v) is float and math.isfinite(v) for v in values):
        return list(values)  # a typed, complete Parquet column: nothing to convert
    try:
        distinct = set(values)
    except TypeError:  # a nested Parquet value: validation refuses it
        return list(values)
    convert = _numeric_cell if spec.kind == "numeric" else _categorical(spec)
    mapping = {value: convert(value) for value in distinct}
    if all(key is mapped for key, mapped in mapping.items()):
        return list(values)
    return list(map(mapping.__getitem__, values))


def _typed_text(value_type: str, text: str) -> Any:
    """A CSV cell's text as the JSON value it spells for a column of that type (text if it spells none).

    A CSV has no types: ``0`` in an integer column is the number 0, as a JSON client would send it.
    """
    stripped = text.strip()
    if value_type == "boolean":
        return {"true": True, "false": False}.get(stripped.lower(), text)
    if value_type in ("integer", "number"):
        if value_type == "integer" and stripped.lstrip("+-").isdigit():
            return int(stripped)
        try:
            number = float(stripped)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def _categorical(spec: ColumnSpec) -> Callable[[Any], Any]:
    coerce = categorical(spec)

    def convert(value: Any) -> Any:
        cell = _categorical_cell(value)
        if cell is None:
            return None
        if isinstance(cell, str):
            cell = _typed_text(spec.value_type, cell)
        try:
            return coerce(cell)
        except Rejected:
            return cell

    return convert


def records(columns: dict[str, list[Any]], size: int) -> list[dict[str, Any]]:
    """Row-wise records (what RecordValidator validates) from converted columns."""
    if not columns:
        return [{} for _ in range(size)]
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
