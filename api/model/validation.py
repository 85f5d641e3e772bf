"""Turn JSON records into a validated column batch, coercing only what maps exactly to a fitted value.

Problems are reported as (row, field, message): where they sit in a request body is the protocol's
business (api/http/body.py places them for POST /predict).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from api.errors import MAX_REPORTED_PROBLEMS, FieldProblem, InvalidRecordsError, clip, clip_name
from api.model.coercion import MISSING, Rejected, all_known, categorical, categorical_array, json_type, numeric, plain
from api.model.columns import ColumnBatch
from api.model.schema import ColumnSpec, InputSchema

_SHOWN_EXTRA = 10  # most unexpected field names one warning lists
MAX_ID_CHARS = 256  # longest ID_FIELD value echoed back as `id` (longer ones are refused, 422)


@dataclass
class ValidatedBatch:
    """Rows ready for inference: the columns, echoed ids, and per-row warnings."""

    columns: ColumnBatch
    ids: list[Any] | None
    warnings: list[list[str]]
    size: int
    unknown: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


class RecordValidator:
    """Validates records against one schema; every lookup is prepared once, at model load."""

    def __init__(self, schema: InputSchema, *, id_field: str | None, forbid_extra: bool) -> None:
        self.schema = schema
        self.id_field = id_field
        self.forbid_extra = forbid_extra
        self._coercers = [
            (spec, categorical(spec) if spec.kind == "categorical" else numeric(spec)) for spec in schema.columns
        ]
        self._known_fields = {spec.name for spec in schema.columns} | ({id_field} if id_field else set())
        self._category_sets = {s.name: set(s.categories) for s in schema.columns if s.kind == "categorical"}
        self._required = frozenset(spec.name for spec in schema.columns)

    def validate(self, records: Sequence[Any]) -> ValidatedBatch:
        """Validate every record; raise one InvalidRecordsError listing each bad field (row and name)."""
        size = len(records)
        warnings: list[list[str]] = [[] for _ in range(size)]
        problems: list[FieldProblem] = []
        raw = self._raw_columns(records)
        if raw is None:
            problems.extend(self._shape_problems(records))
        if raw is None or not self._only_known_fields(records):
            extra = set().union(*(r.keys() for r in records if type(r) is dict)) - self._known_fields
            if extra:
                problems.extend(self._extra_fields(records, warnings))
        values: dict[str, list[Any]] = {}
        for spec, coerce in self._coercers:
            column = plain(spec, raw[spec.name]) if raw is not None else None
            values[spec.name] = column if column is not None else self._coerce_each(spec, coerce, records, problems)
            if len(problems) >= MAX_REPORTED_PROBLEMS:
                break
        if self.id_field:
            problems.extend(self._id_problems(records))
        if problems:
            problems.sort(key=operator.attrgetter("row"))
            raise InvalidRecordsError(problems)
        ids = [record.get(self.id_field) for record in records] if self.id_field else None
        return self._assemble(size, values, warnings, ids)

    def validate_columns(self, columns: Mapping[str, Sequence[Any]], size: int) -> ValidatedBatch:
        """Column-shaped input (a file's chunk: each field's values, plus the id): the checks of ``validate``.

        When every column already holds exactly what its field accepts, the whole-column fast path
        answers without building records; otherwise the records are built and validated as any
        request's, so problems are found and reported exactly as ``validate`` reports them.
        """
        values: dict[str, list[Any]] = {}
        for spec in self.schema.columns:
            column = plain(spec, list(columns[spec.name]))
            if column is None:
                names = [spec.name for spec in self.schema.columns] + ([self.id_field] if self.id_field else [])
                names = list(dict.fromkeys(names))
                rows = [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]
                return self.validate(rows)
            values[spec.name] = column
        ids = list(columns[self.id_field]) if self.id_field else None
        return self._assemble(size, values, [[] for _ in range(size)], ids)

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
        self, spec: ColumnSpec, coerce: Callable[[Any], Any], records: Sequence[Any], problems: list[FieldProblem]
    ) -> list[Any]:
        """The careful path: coerce value by value, recording every rejected field."""
        column: list[Any] = [None] * len(records)
        for row, record in enumerate(records):
            if type(record) is not dict or spec.name not in record:
                continue  # reported by _shape_problems
            try:
                column[row] = coerce(record[spec.name])
            except Rejected as exc:
                problems.append(FieldProblem(row, spec.name, str(exc)))
        return column

    def _id_problems(self, records: Sequence[Any]) -> list[FieldProblem]:
        """Ids are echoed in answers: a bounded string or a number, never a document of the client's."""
        problems: list[FieldProblem] = []
        name = self.id_field
        for row, record in enumerate(records):
            value = record.get(name) if type(record) is dict else None
            if isinstance(value, str) and len(value) > MAX_ID_CHARS:
                problems.append(FieldProblem(row, name, f"longer than {MAX_ID_CHARS} characters", "too_long"))
            elif isinstance(value, dict | list):
                problems.append(FieldProblem(row, name, f"expected a string or a number, got {json_type(value)}"))
        return problems

    def _shape_problems(self, records: Sequence[Any]) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                problems.append(FieldProblem(row, None, f"expected a JSON object, got {json_type(record)}"))
                continue
            problems.extend(
                FieldProblem(row, spec.name, "field required", "missing")
                for spec in self.schema.columns
                if spec.name not in record
            )
        return problems

    def _extra_fields(self, records: Sequence[Any], warnings: list[list[str]]) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                continue
            extra = [key for key in record if key not in self._known_fields]
            if extra and self.forbid_extra:
                problems.extend(
                    FieldProblem(row, clip_name(key), "unexpected field", "extra_forbidden") for key in extra
                )
            elif extra:
                shown = ", ".join(clip_name(key) for key in sorted(extra)[:_SHOWN_EXTRA])
                more = f" and {len(extra) - _SHOWN_EXTRA} more" if len(extra) > _SHOWN_EXTRA else ""
                warnings[row].append(f"ignored fields not used by the model: {shown}{more}")
        return problems

    def _assemble(
        self, size: int, values: dict[str, list[Any]], warnings: list[list[str]], ids: list[Any] | None
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
                array = categorical_array(spec, column)
                known = self._category_sets[spec.name]
                if spec.private or all_known(column, known):
                    # A private column: a warning (or a count on /metrics) would tell whether a value is
                    # a training category; the encoder's handle_unknown handles unseen values either way.
                    columns[spec.name] = array
                    continue
                for row, value in enumerate(column):
                    if isinstance(value, float) and math.isnan(value):
                        missing[spec.name] = missing.get(spec.name, 0) + 1
                    elif value not in known:
                        unknown[spec.name] = unknown.get(spec.name, 0) + 1
                        warnings[row].append(
                            f"{spec.name}: {clip(value)} is not a category seen in training; "
                            f"encoded per the encoder's handle_unknown={spec.unknown_policy!r}"
                        )
            columns[spec.name] = array
        for name in self.schema.passthrough_nulls:
            columns[name] = np.full(size, MISSING, dtype=object)
        return ValidatedBatch(columns=columns, ids=ids, warnings=warnings, size=size, unknown=unknown, missing=missing)
