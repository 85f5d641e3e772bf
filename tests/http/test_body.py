"""Reading the body: a JSON number beyond float64 is valid JSON, so it is a 422 naming the field and row, not a 400."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.live_server import LiveServer


def _record(server: LiveServer) -> tuple[dict[str, Any], str]:
    described = server.client.get("/model").json()
    numeric = next(f["name"] for f in described["input_schema"]["fields"] if f["kind"] == "numeric")
    return described["input_schema"]["example"], numeric


def _raw(record: dict[str, Any], field: str, literal: str) -> str:
    """The record as JSON text with `field` set to a literal the json module would not write."""
    import json

    return json.dumps({**record, field: "@@"}).replace('"@@"', literal)


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param("1e400", id="exponent"),
        pytest.param("-1.5E+999", id="negative"),
        pytest.param("1" + "0" * 400, id="400-digit-integer"),
        pytest.param("9" * 5000, id="beyond-python-int-string-limit"),
    ],
)
def test_single_record_number_out_of_range_is_422_naming_the_field(default_server: LiveServer, literal: str) -> None:
    record, field = _record(default_server)
    response = default_server.client.post(
        "/predict", content=_raw(record, field, literal), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    (detail,) = error["details"]
    assert detail["loc"] == ["body", field] and detail["field"] == field and "row" not in detail
    assert detail["type"] == "out_of_range" and "float64" in detail["msg"]
    assert field in error["message"]


def test_batch_names_the_row(default_server: LiveServer) -> None:
    record, field = _record(default_server)
    rows = [_raw(record, field, "1.0"), _raw(record, field, "2.0"), _raw(record, field, "1e400")]
    body = '{"instances": [' + ", ".join(rows) + "]}"
    response = default_server.client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    (detail,) = error["details"]
    assert detail["loc"] == ["body", "instances", 2, field] and (detail["row"], detail["field"]) == (2, field)
    assert f"row 2, field '{field}'" in error["message"]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        pytest.param("1.7976931348623157e308", 200, id="largest-float64-is-served"),
        pytest.param("1e-400", 200, id="underflow-is-zero-as-orjson-reads-it"),
        pytest.param("NaN", 400, id="nan-is-still-not-json"),
        pytest.param("1e400, ", 400, id="out-of-range-in-broken-json-stays-400"),
    ],
)
def test_edges(default_server: LiveServer, text: str, status: int) -> None:
    record, field = _record(default_server)
    response = default_server.client.post(
        "/predict", content=_raw(record, field, text), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text


def test_feedback_label_out_of_range_is_422(default_server: LiveServer) -> None:
    body = '{"items": [{"prediction_id": "abc", "label": 1e400}]}'
    response = default_server.client.post("/feedback", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    (detail,) = response.json()["error"]["details"]
    assert (detail["row"], detail["field"]) == (0, "label")
