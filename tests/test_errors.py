"""api/errors.py: every error's status, code and headers, and the one renderer's bytes on the wire."""

from __future__ import annotations

import json

import pytest

from api import errors
from api.errors import (
    REALM,
    ActivationInProgressError,
    ArtifactError,
    FieldProblem,
    ForbiddenError,
    InternalError,
    InvalidInputError,
    InvalidRecordsError,
    MalformedRequestError,
    NotReadyError,
    OverloadedError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestTimeoutError,
    ServiceError,
    UnauthorizedError,
    UnknownCategoryError,
    UnsafeArtifactError,
    error_codes,
    render_error,
    wants_problem_json,
)

ERRORS = [
    pytest.param(MalformedRequestError("bad json"), 400, "malformed_request", "bad json", {}, id="malformed"),
    pytest.param(InvalidInputError("bad field"), 422, "invalid_input", "bad field", {}, id="invalid-input"),
    pytest.param(PayloadTooLargeError("too big"), 413, "payload_too_large", "too big", {}, id="too-large"),
    pytest.param(UnauthorizedError("who?", token_sent=False), 401, "unauthorized", "who?",
                 {"www-authenticate": REALM}, id="unauthorized-no-token"),
    pytest.param(UnauthorizedError("who?", token_sent=True), 401, "unauthorized", "who?",
                 {"www-authenticate": f'{REALM}, error="invalid_token"'}, id="unauthorized-bad-token"),
    pytest.param(ForbiddenError("admin"), 403, "forbidden", "these credentials lack the 'admin' scope",
                 {"www-authenticate": f'{REALM}, error="insufficient_scope", scope="admin"'}, id="forbidden"),
    pytest.param(RateLimitedError("slow down", retry_after_seconds=7), 429, "rate_limited", "slow down",
                 {"retry-after": "7"}, id="rate-limited"),
    pytest.param(NotReadyError("loading"), 503, "not_ready", "loading", {"retry-after": "1"}, id="not-ready"),
    pytest.param(OverloadedError("queue full", retry_after_seconds=2), 503, "overloaded", "queue full",
                 {"retry-after": "2"}, id="overloaded"),
    pytest.param(ActivationInProgressError("busy"), 409, "activation_in_progress", "busy", {"retry-after": "1"},
                 id="activation-in-progress"),
    pytest.param(RequestTimeoutError("late"), 504, "timeout", "late", {}, id="timeout"),
    pytest.param(ArtifactError("broken"), 500, "artifact_error", "broken", {}, id="artifact"),
    pytest.param(UnsafeArtifactError("evil"), 500, "unsafe_artifact", "evil", {}, id="unsafe-artifact"),
    pytest.param(InternalError(), 500, "internal_error", "internal server error", {}, id="internal"),
]


@pytest.mark.parametrize(("error", "status", "code", "message", "extra_headers"), ERRORS)
def test_rendered_error(
    error: ServiceError, status: int, code: str, message: str, extra_headers: dict[str, str]
) -> None:
    rendered = render_error(error)
    headers = {name.decode(): value.decode() for name, value in rendered.headers}
    assert rendered.status == status
    assert headers == {"content-type": "application/json", "content-length": str(len(rendered.body)),
                       **extra_headers}
    body = json.loads(rendered.body)
    assert body == {
        "error": {"code": code, "message": message},
        "type": f"urn:modelo-ml-api:error:{code}",
        "title": type(error).title,
        "status": status,
        "detail": message,
    }
    assert code in error_codes()
    assert str(error) == message


def test_internal_error_says_nothing_of_its_cause() -> None:
    assert json.loads(render_error(InternalError()).body)["error"] == {
        "code": "internal_error", "message": "internal server error"}


@pytest.mark.parametrize(
    ("accept", "problem"),
    [
        pytest.param(None, False, id="no-accept"),
        pytest.param("", False, id="empty"),
        pytest.param("application/json", False, id="json"),
        pytest.param("*/*", False, id="anything"),
        pytest.param("application/problem+json", True, id="problem-json"),
        pytest.param(b"text/html, Application/Problem+JSON;q=0.9", True, id="in-a-list-any-case"),
    ],
)
def test_problem_json_only_when_asked(accept: bytes | str | None, problem: bool) -> None:
    assert wants_problem_json(accept) is problem
    headers = dict(render_error(InvalidInputError("x"), accept=accept).headers)
    assert headers[b"content-type"] == (b"application/problem+json" if problem else b"application/json")


def test_details_appear_only_when_there_are_some() -> None:
    details = [{"loc": ["body", "x"], "field": "x", "msg": "bad", "type": "invalid"}]
    assert json.loads(render_error(InvalidInputError("x", details=details)).body)["error"]["details"] == details
    assert "details" not in json.loads(render_error(InvalidInputError("x", details=[])).body)["error"]


def test_records_errors_name_the_first_problem_and_count_the_rest() -> None:
    problems = [FieldProblem(2, "tenure", "expected a number"), FieldProblem(5, None, "expected a JSON object"),
                FieldProblem(7, "plan", "unknown category 'x'")]
    error = InvalidRecordsError(problems)
    assert error.status_code == 422 and error.code == "invalid_input"
    assert error.message == "invalid input at row 2, field 'tenure': expected a number (and 2 more)"
    assert error.details[1] == {"row": 5, "field": None, "msg": "expected a JSON object", "type": "invalid"}
    alone = InvalidRecordsError([FieldProblem(0, None, "expected a JSON object")])
    assert alone.message == "invalid input at row 0, record: expected a JSON object"
    assert errors.problem_summary(problems[:1], rows=False) == "invalid input at field 'tenure': expected a number"


def test_capped_details() -> None:
    problems = [FieldProblem(i, "f", "bad") for i in range(errors.MAX_REPORTED_PROBLEMS + 5)]
    error = InvalidRecordsError(problems)
    assert len(error.details) == errors.MAX_REPORTED_PROBLEMS
    assert error.message.endswith(f"(and {errors.MAX_REPORTED_PROBLEMS + 4} more)")


def test_unknown_category_error_names_the_column() -> None:
    error = UnknownCategoryError("plan", "gold")
    assert (error.status_code, error.column, error.value) == (422, "plan", "gold")
    assert error.message == "unknown category 'gold' for column 'plan'"
    assert error.details == [{"loc": ["plan"], "field": "plan", "msg": "unknown category", "type": "unknown_category"}]


def test_every_error_class_is_an_http_error_with_a_title() -> None:
    codes = error_codes()
    assert {"internal_error", "invalid_input", "unauthorized", "forbidden", "payload_too_large", "rate_limited",
            "timeout", "not_ready", "overloaded", "unknown_version", "reload_refused"} <= codes
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        assert 400 <= cls.status_code <= 599 and cls.title and cls.code in codes, cls
        pending.extend(cls.__subclasses__())
