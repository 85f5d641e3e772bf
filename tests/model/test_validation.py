"""RecordValidator: exactly which JSON values each column accepts, what they become, and how refusals are named."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import MAX_REPORTED_PROBLEMS, InvalidRecordsError
from api.model.schema import ColumnSpec, InputSchema
from api.model.validation import RecordValidator, ValidatedBatch

SCHEMA = InputSchema(
    columns=(
        ColumnSpec("n", "numeric"),
        ColumnSpec("m", "numeric", nullable=True),
        ColumnSpec("s", "categorical", categories=("a", "b"), value_type="string", unknown_policy="ignore"),
        ColumnSpec("e", "categorical", categories=("x", "y"), value_type="string", unknown_policy="error"),
        ColumnSpec("i", "categorical", nullable=True, categories=(0, 1, 2), value_type="integer",
                   unknown_policy="ignore", numeric_categories=True),
        ColumnSpec("f", "categorical", categories=(False, True), value_type="boolean",
                   unknown_policy="error", numeric_categories=True),
        ColumnSpec("r", "categorical", categories=(0.5, 1.5), value_type="number",
                   unknown_policy="ignore", numeric_categories=True),
    ),
    passthrough_nulls=("dropped",),
)
GOOD: dict[str, Any] = {"n": 1.5, "m": 2.0, "s": "a", "e": "x", "i": 1, "f": True, "r": 0.5}


def validator(*, id_field: str | None = "cid", forbid_extra: bool = False) -> RecordValidator:
    return RecordValidator(SCHEMA, id_field=id_field, forbid_extra=forbid_extra)


def refusals(records: list[Any], **options: Any) -> list[tuple[int, str | None, str, str]]:
    with pytest.raises(InvalidRecordsError) as caught:
        validator(**options).validate(records)
    return [(p.row, p.field, p.message, p.type) for p in caught.value.problems]


def same(a: Any, b: Any) -> bool:
    """Equal, type included (1 is not 1.0 is not True), NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


ACCEPTED = [
    pytest.param("n", 3, 3.0, id="int-as-number"),
    pytest.param("n", -0.25, -0.25, id="float"),
    pytest.param("m", None, math.nan, id="null-where-nullable"),
    pytest.param("s", "b", "b", id="known-string"),
    pytest.param("s", "zz", "zz", id="unknown-string-with-ignore"),
    pytest.param("i", 2.0, 2, id="integral-float-to-int"),
    pytest.param("i", 7, 7, id="unknown-int-with-ignore"),
    pytest.param("i", None, math.nan, id="null-int-category"),
    pytest.param("r", 1, 1.0, id="int-to-number-category"),
]


@pytest.mark.parametrize(("field", "value", "expected"), ACCEPTED)
def test_accepted_values_become_the_fitted_value(field: str, value: Any, expected: Any) -> None:
    # Alone (the value-by-value path when the value is unusual) and beside plain rows: same result.
    for records in ([{**GOOD, field: value}], [GOOD, {**GOOD, field: value}, GOOD]):
        batch = validator().validate(records)
        row = len(records) // 2
        got = batch.columns[field][row]
        got = got.item() if isinstance(got, np.generic) else got
        assert same(got, expected), (records, got)


REFUSED = [
    pytest.param("n", "1", "expected a number, got string", id="number-as-text"),
    pytest.param("n", True, "expected a number, got boolean", id="number-as-bool"),
    pytest.param("n", None, "expected a number; null is not accepted", id="null-not-nullable"),
    pytest.param("n", [1], "expected a number, got array", id="number-as-array"),
    pytest.param("n", math.inf, "expected a finite number", id="infinity"),
    pytest.param("n", -math.inf, "expected a finite number", id="minus-infinity"),
    pytest.param("n", math.nan, "expected a finite number", id="nan-is-not-null"),
    pytest.param("m", math.nan, "expected a finite number", id="nan-is-not-null-even-where-nullable"),
    pytest.param("n", 10**400, "expected a finite number", id="int-beyond-float64"),
    pytest.param("m", "x", "expected a number or null, got string", id="nullable-says-or-null"),
    pytest.param("e", "z", "unknown category 'z': expected one of ['x', 'y'] (string)", id="unknown-with-error"),
    pytest.param("e", 1, "expected one of ['x', 'y'] (string), got number 1", id="number-for-string"),
    pytest.param("e", None, "expected one of ['x', 'y'] (string); null is not accepted", id="null-category"),
    pytest.param("e", {"v": "x"}, "expected one of ['x', 'y'] (string), got object", id="object-for-string"),
    pytest.param("i", 2.5, "got number 2.5", id="fraction-for-int"),
    pytest.param("i", "two", "got string 'two'", id="word-for-int"),
    pytest.param("i", 2**70, "got number", id="beyond-int64"),
    pytest.param("f", 2, "got number 2", id="two-for-bool"),
    pytest.param("f", "yes", "got string 'yes'", id="yes-for-bool"),
    pytest.param("r", "abc", "got string 'abc'", id="word-for-number-category"),
    pytest.param("r", False, "got boolean False", id="bool-for-number-category"),
    # Strict JSON types (README, "The contract"): text, booleans and numbers are not converted into each other.
    pytest.param("i", "2", "got string '2'", id="digit-string-for-int"),
    pytest.param("i", " +2 ", "got string ' +2 '", id="signed-padded-digits-for-int"),
    pytest.param("i", True, "got boolean True", id="bool-for-int"),
    pytest.param("f", "TRUE ", "got string 'TRUE '", id="text-for-bool"),
    pytest.param("f", "false", "got string 'false'", id="false-text-for-bool"),
    pytest.param("f", 0, "got number 0", id="zero-for-bool"),
    pytest.param("f", 1.0, "got number 1.0", id="one-for-bool"),
    pytest.param("r", "1.5", "got string '1.5'", id="text-for-number-category"),
]


@pytest.mark.parametrize(("field", "value", "message"), REFUSED)
def test_refused_values_name_row_and_field(field: str, value: Any, message: str) -> None:
    (problem,) = refusals([GOOD, GOOD, {**GOOD, field: value}])
    row, named, text, kind = problem
    assert (row, named, kind) == (2, field, "invalid")
    assert message in text, text


def test_every_problem_is_reported_sorted_by_row() -> None:
    records: list[Any] = [
        {**GOOD, "e": "z", "n": "1"},
        GOOD,
        "not an object",
        {k: v for k, v in GOOD.items() if k != "s"},
        {**GOOD, "i": 2.5},
    ]
    found = [(row, field, kind) for row, field, _, kind in refusals(records)]
    assert found == [
        (0, "n", "invalid"), (0, "e", "invalid"),
        (2, None, "invalid"),
        (3, "s", "missing"),
        (4, "i", "invalid"),
    ]
    assert refusals([{k: v for k, v in GOOD.items() if k != "s"}]) == [(0, "s", "field required", "missing")]
    assert refusals(["x"])[0][2] == "expected a JSON object, got string"


def test_problems_are_capped() -> None:
    records = [{**GOOD, "n": "bad", "m": "bad"} for _ in range(MAX_REPORTED_PROBLEMS)]
    with pytest.raises(InvalidRecordsError) as caught:
        validator().validate(records)
    assert MAX_REPORTED_PROBLEMS <= len(caught.value.problems) < 2 * MAX_REPORTED_PROBLEMS
    assert len(caught.value.details) == MAX_REPORTED_PROBLEMS


def test_extra_fields_warn_or_are_refused_and_the_id_is_not_extra() -> None:
    records = [{**GOOD, "cid": "c0"}, {**GOOD, "cid": "c1", "z": 1, "a": 2}, GOOD]
    batch = validator().validate(records)
    assert batch.ids == ["c0", "c1", None]
    assert batch.warnings == [[], ["ignored fields not used by the model: a, z"], []]
    assert refusals(records, forbid_extra=True) == [
        (1, "z", "unexpected field", "extra_forbidden"), (1, "a", "unexpected field", "extra_forbidden")
    ]
    # Without an id field, the id is just another extra field.
    assert validator(id_field=None).validate([{**GOOD, "cid": "c0"}]).warnings == [
        ["ignored fields not used by the model: cid"]
    ]
    assert validator(id_field=None).validate([GOOD]).ids is None


def test_a_record_missing_the_id_but_holding_an_extra_field_still_warns() -> None:
    # Key counting alone cannot tell this row from a complete one.
    batch = validator().validate([{**GOOD, "cid": "c0"}, {**GOOD, "note": "x"}])
    assert batch.warnings == [[], ["ignored fields not used by the model: note"]]
    assert batch.ids == ["c0", None]


def test_columns_have_the_fitted_dtypes_and_counts() -> None:
    records = [
        GOOD,
        {**GOOD, "m": None, "s": "new", "i": None, "r": 9.5},
        {**GOOD, "s": "newer", "i": 9},
    ]
    batch = validator().validate(records)
    assert batch.size == 3
    assert batch.columns["n"].dtype == np.float64 and batch.columns["n"].tolist() == [1.5, 1.5, 1.5]
    assert np.isnan(batch.columns["m"][1]) and batch.columns["m"].dtype == np.float64
    assert batch.columns["s"].dtype == object and batch.columns["s"].tolist() == ["a", "new", "newer"]
    assert batch.columns["i"].dtype == np.float64  # an int category column with a missing value
    assert batch.columns["f"].dtype == np.bool_
    assert batch.columns["r"].dtype == np.float64
    assert np.isnan(batch.columns["dropped"].astype(float)).all() and batch.columns["dropped"].shape == (3,)
    assert batch.missing == {"n": 0, "m": 1, "i": 1}
    assert batch.unknown == {"s": 2, "i": 1, "r": 1}
    assert batch.warnings[0] == []
    assert [w.split(":")[0] for w in batch.warnings[1]] == ["s", "r"]
    assert batch.warnings[2] == [
        "s: 'newer' is not a category seen in training; encoded per the encoder's handle_unknown='ignore'",
        "i: 9 is not a category seen in training; encoded per the encoder's handle_unknown='ignore'",
    ]
    plain = validator().validate([GOOD, {**GOOD, "i": 2}])
    assert plain.columns["i"].dtype == np.int64 and plain.columns["i"].tolist() == [1, 2]
    assert plain.unknown == {} and plain.missing == {"n": 0, "m": 0}


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "n": st.sampled_from([0, 1.5, -3, True, "1", None, 2**70]),
    "m": st.sampled_from([0.5, 4, None, "x"]),
    "s": st.sampled_from(["a", "b", "q", 1, None]),
    "e": st.sampled_from(["x", "y", "z", None]),
    "i": st.sampled_from([0, 2, 5, "1", 1.0, 1.5, True, None]),
    "f": st.sampled_from([True, False, 0, 1, "true", 2]),
    "r": st.sampled_from([0.5, 1.5, 2.5, 1, "0.5", True]),
}
RECORDS = st.lists(st.fixed_dictionaries(VALUES), min_size=1, max_size=8)


def _outcome(records: list[dict[str, Any]]) -> ValidatedBatch | list[tuple[int, str | None, str]]:
    try:
        return validator().validate(records)
    except InvalidRecordsError as exc:
        return [(p.row, p.field, p.message) for p in exc.problems]


@given(RECORDS)
@settings(max_examples=200, deadline=None)
def test_a_batch_is_validated_exactly_as_its_rows_alone(records: list[dict[str, Any]]) -> None:
    """A row's checks never look at other rows: whole-column fast paths must agree with row-by-row checks."""
    together = _outcome(records)
    alone = [_outcome([record]) for record in records]
    if isinstance(together, list):
        expected = [(row, field, message) for row, one in enumerate(alone) if isinstance(one, list)
                    for _, field, message in one]
        assert together == expected
        return
    assert all(isinstance(one, ValidatedBatch) for one in alone)
    for name in [*VALUES, "dropped"]:
        column = together.columns[name].tolist()
        rows = [one.columns[name].tolist()[0] for one in alone if isinstance(one, ValidatedBatch)]
        assert all(same(float(a), float(b)) if isinstance(a, float) or isinstance(b, float) else same(a, b)
                   for a, b in zip(column, rows, strict=True)), (name, column, rows)
    assert together.warnings == [w for one in alone if isinstance(one, ValidatedBatch) for w in one.warnings]
