"""The model layer reports (row, field, message); POST /predict's body places each problem in its own shape."""

from __future__ import annotations

from api.errors import FieldProblem, InvalidRecordsError
from api.http.body import locate

PROBLEMS = [
    FieldProblem(0, "tenure", "expected a number or null, got string"),
    FieldProblem(2, None, "expected a JSON object, got array"),
    FieldProblem(2, "Contract", "field required", "missing"),
]


def test_a_batch_names_the_row_in_the_location() -> None:
    error = locate(InvalidRecordsError(PROBLEMS), batch=True)
    assert error.status_code == 422 and error.code == "invalid_input"
    assert error.message == "invalid input at row 0, field 'tenure': expected a number or null, got string (and 2 more)"
    assert error.details == [
        {"loc": ["body", "instances", 0, "tenure"], "msg": PROBLEMS[0].message, "type": "invalid", "field": "tenure",
         "row": 0},
        {"loc": ["body", "instances", 2], "msg": PROBLEMS[1].message, "type": "invalid", "row": 2},
        {"loc": ["body", "instances", 2, "Contract"], "msg": "field required", "type": "missing", "field": "Contract",
         "row": 2},
    ]


def test_one_record_has_no_row() -> None:
    error = locate(InvalidRecordsError(PROBLEMS[:1]), batch=False)
    assert error.message == "invalid input at field 'tenure': expected a number or null, got string"
    assert error.details == [
        {"loc": ["body", "tenure"], "msg": PROBLEMS[0].message, "type": "invalid", "field": "tenure"}
    ]


def test_at_most_fifty_problems_are_listed_but_all_are_counted() -> None:
    problems = [FieldProblem(row, "tenure", "expected a number") for row in range(57)]
    error = locate(InvalidRecordsError(problems), batch=True)
    assert len(error.details) == 50 and error.message.endswith("(and 56 more)")
