"""RecordValidator.validate_columns (a file's chunk, column-shaped) answers exactly as validate on the records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.errors import InvalidRecordsError
from api.model.loaded import LoadedModel
from api.model.loader import load_bundle


@pytest.fixture(scope="module")
def model(default_bundle: Path) -> LoadedModel:
    return load_bundle(default_bundle, id_field="customerID")


def _columns(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in records] for name in records[0]}


def _records(model: LoadedModel) -> list[dict[str, Any]]:
    rows = []
    for i in range(40):
        row = dict(model.example, customerID=f"C{i}", tenure=i, TotalCharges=None if i % 7 == 0 else 10.5 * i)
        row["Contract"] = ("Month-to-month", "One year", "Two year", "Ten year")[i % 4]  # an unknown category too
        rows.append(row)
    return rows


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({}, id="clean-fast-path"),
        pytest.param({"SeniorCitizen": 1.0}, id="float-integer-careful-path"),
    ],
)
def test_same_batch_as_validate(model: LoadedModel, change: dict[str, Any]) -> None:
    records = [dict(r, **change) for r in _records(model)]
    expected = model.validator.validate(records)
    got = model.validator.validate_columns(_columns(records), len(records))
    assert got.ids == expected.ids and got.size == expected.size
    assert (got.unknown, got.missing) == (expected.unknown, expected.missing)
    for name, column in expected.columns.items():
        assert got.columns[name].dtype == column.dtype
        assert np.array_equal(got.columns[name], column, equal_nan=column.dtype.kind == "f"), name


def test_same_problems_as_validate(model: LoadedModel) -> None:
    records = _records(model)
    records[3] = dict(records[3], tenure="three")
    with pytest.raises(InvalidRecordsError) as by_records:
        model.validator.validate(records)
    with pytest.raises(InvalidRecordsError) as by_columns:
        model.validator.validate_columns(_columns(records), len(records))
    assert by_columns.value.problems == by_records.value.problems
    assert [(p.row, p.field) for p in by_columns.value.problems] == [(3, "tenure")]
