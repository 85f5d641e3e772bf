"""A catalogue of bad requests: each gets a 4xx JSON error naming what is wrong; the service keeps serving."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.live_server import LiveServer


def _example(server: LiveServer) -> dict[str, Any]:
    example: dict[str, Any] = server.client.get("/model").json()["input_schema"]["example"]
    return example


def _fields(server: LiveServer) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in server.client.get("/model").json()["input_schema"]["fields"]}


RAW_CASES = [
    pytest.param(b"{not json", "application/json", 400, None, id="malformed-json"),
    pytest.param(b'{"tenure": NaN}', "application/json", 400, None, id="nan-literal"),
    pytest.param(b'{"tenure": Infinity}', "application/json", 400, None, id="infinity-literal"),
    pytest.param(b"", "application/json", 400, None, id="empty-body"),
    pytest.param(b"[1, 2]", "application/json", 422, None, id="array-body"),
    pytest.param(b'"text"', "application/json", 422, None, id="string-body"),
    pytest.param(b"{}", "text/plain", 415, None, id="wrong-content-type"),
    pytest.param(b"{}", "", 415, None, id="no-content-type"),
    pytest.param(b"{}", "application/evil+json", 415, None, id="plus-json-suffix"),
    pytest.param(b"{}", "text/json", 415, None, id="text-json"),
    pytest.param(b"{}", "application/json; charset=latin-1", 415, None, id="non-utf8-charset"),
    pytest.param(b'{"tenure": 1, "tenure": 2}', "application/json", 400, "tenure", id="duplicate-key"),
    pytest.param(b'{"instances": [{"a": 1}, {"b": 1, "b": 2}]}', "application/json", 400, "b", id="duplicate-in-row"),
    pytest.param(b'{"a": {"k": 1, "k": 2}}', "application/json", 400, "k", id="duplicate-nested"),
    pytest.param(b'{"instances": [], "instances": []}', "application/json", 400, "instances", id="duplicate-batch-key"),
    pytest.param(b'{"instances": [{}], "tenure": 1}', "application/json", 422, "tenure", id="batch-with-extra-key"),
    pytest.param(b'{"instances": []}', "application/json", 422, "instances", id="empty-batch"),
    pytest.param(b'{"instances": {"a": 1}}', "application/json", 422, "instances", id="instances-not-array"),
    pytest.param(b'{"instances": [1, "x"]}', "application/json", 422, None, id="rows-not-objects"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "field"), RAW_CASES)
def test_malformed_bodies(
    default_server: LiveServer, body: bytes, content_type: str, status: int, field: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = default_server.client.post("/predict", content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if field:
        assert error["details"][0]["field"] == field


def _mutate(example: dict[str, Any], fields: dict[str, dict[str, Any]], case: str) -> tuple[dict[str, Any], str]:
    numeric = next(n for n, f in fields.items() if f["kind"] == "numeric")
    categorical = next(n for n, f in fields.items() if f["kind"] == "categorical" and f["type"] == "string")
    record = dict(example)
    if case == "missing-column":
        record.pop(numeric)
    elif case == "number-as-text":
        record[numeric] = "12.5"
    elif case == "number-as-bool":
        record[numeric] = True
    elif case == "nested-object":
        record[categorical] = {"value": "x"}
    elif case == "nested-array":
        record[numeric] = [1, 2]
    elif case == "category-as-number":
        record[categorical] = 3
    return record, (
        numeric if case in ("missing-column", "number-as-text", "number-as-bool", "nested-array") else categorical
    )


@pytest.mark.parametrize(
    "case",
    ["missing-column", "number-as-text", "number-as-bool", "nested-object", "nested-array", "category-as-number"],
)
def test_wrong_fields_name_the_field(default_server: LiveServer, case: str) -> None:
    record, field = _mutate(_example(default_server), _fields(default_server), case)
    response = default_server.client.post("/predict", json=record)
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert details[0]["field"] == field
    assert details[0]["msg"]


def test_one_bad_row_in_a_batch_names_row_and_field(default_server: LiveServer) -> None:
    example = _example(default_server)
    numeric = next(n for n, f in _fields(default_server).items() if f["kind"] == "numeric")
    batch = [example, example, {**example, numeric: "oops"}, example]
    response = default_server.client.post("/predict", json={"instances": batch})
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert (detail["row"], detail["field"]) == (2, numeric)
    assert detail["loc"] == ["body", "instances", 2, numeric]


def test_batch_over_the_limit_is_413(default_server: LiveServer) -> None:
    example = _example(default_server)
    response = default_server.client.post("/predict", json={"instances": [example] * 1001})
    assert response.status_code == 413
    assert "1000" in response.json()["error"]["message"]


def test_service_keeps_serving_after_bad_input(default_server: LiveServer) -> None:
    for body in (b"{", b"[]", b'{"instances": []}'):
        default_server.client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert default_server.alive()
    assert default_server.client.post("/predict", json=_example(default_server)).status_code == 200


def test_json_with_charset_utf8_is_accepted(default_server: LiveServer) -> None:
    body = json.dumps(_example(default_server)).encode()
    headers = {"Content-Type": "Application/JSON; charset=UTF-8"}
    assert default_server.client.post("/predict", content=body, headers=headers).status_code == 200


def test_a_colon_inside_a_value_is_not_mistaken_for_a_duplicate(default_server: LiveServer) -> None:
    # The fast duplicate check counts ':' bytes; a colon in a string takes the careful path, same answer.
    fields = _fields(default_server)
    categorical = next(n for n, f in fields.items() if f["kind"] == "categorical" and f["type"] == "string")
    record = {**_example(default_server), categorical: "a:b"}
    response = default_server.client.post("/predict", json=record)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param("1", id="text-1"),
        pytest.param(2**53 + 1, id="beyond-exact-float"),
        pytest.param(2**63, id="int64-overflow"),
        pytest.param(2**64 - 1, id="uint64-max"),
        pytest.param("abc", id="text"),
    ],
)
def test_integer_category_out_of_range_is_a_422(default_server: LiveServer, value: object) -> None:
    record = {**_example(default_server), "SeniorCitizen": value}
    response = default_server.client.post("/predict", json=record)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "SeniorCitizen"


@pytest.mark.parametrize(
    ("method", "content", "status"),
    [
        pytest.param("GET", None, 405, id="get-predict"),
        pytest.param("PUT", b"{}", 405, id="put-predict"),
        pytest.param("POST", b"{not json", 400, id="post-bad-json"),
        pytest.param("POST", b"[]", 422, id="post-array"),
    ],
)
def test_predict_errors_carry_the_same_headers_as_every_answer(
    default_server: LiveServer, method: str, content: bytes | None, status: int
) -> None:
    """POST /predict is served beside FastAPI's stack and the other methods through it: both look alike."""
    headers = {"Content-Type": "application/json", "X-Request-ID": f"lane-{method}-{status}"}
    response = default_server.client.request(method, "/predict", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"]
    assert response.headers["x-request-id"] == f"lane-{method}-{status}"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
