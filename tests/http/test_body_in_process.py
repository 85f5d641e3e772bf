"""Reading the body in process: content type, size, JSON, numbers beyond float64, one record or a batch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from api.errors import InvalidInputError, PayloadTooLargeError
from api.http.body import out_of_range_numbers, split_records
from tests.support.in_process import served

GOOD = '{"plan": "basic", "region": "north", "tenure": 12.0, "charges": 55.5}'
BIG = "1" + "0" * 400


@pytest.mark.parametrize(
    ("raw", "details"),
    [
        pytest.param('{"a": 1e400}', [{"loc": ["body", "a"], "field": "a"}], id="field"),
        pytest.param('{"instances": [{"a": 1}, {"a": -2E+999}]}',
                     [{"loc": ["body", "instances", 1, "a"], "field": "a", "row": 1}], id="row-and-field"),
        pytest.param("[1e999]", [{"loc": ["body", 0], "row": 0}], id="top-level-list"),
        pytest.param('{"a": {"b": [1, 1e400]}}', [{"loc": ["body", "a", "b", 1], "field": "b", "row": 1}],
                     id="nested"),
        pytest.param('{"a": 1e400, "b": 1e401}', [{"loc": ["body", "a"], "field": "a"},
                                                  {"loc": ["body", "b"], "field": "b"}], id="two"),
        pytest.param('{"a": 1e300}', [], id="in-range"),
        pytest.param('{"a": NaN}', [], id="nan-stays-refused"),
        pytest.param('{"a": Infinity}', [], id="infinity-stays-refused"),
        pytest.param('{"a": 1e400', [], id="broken-json"),
        pytest.param("[" * 100_000, [], id="too-deep"),
    ],
)
def test_out_of_range_numbers(raw: str, details: list[dict[str, Any]]) -> None:
    found = out_of_range_numbers(raw.encode())
    assert [{k: v for k, v in d.items() if k in ("loc", "field", "row")} for d in found] == details
    for detail in found:
        assert detail["type"] == "out_of_range" and "outside the float64 range" in detail["msg"]


def test_a_long_number_is_shortened_in_the_message() -> None:
    (detail,) = out_of_range_numbers(f'{{"a": {BIG}}}'.encode())
    assert detail["msg"].startswith(f"number {BIG[:20]}…(401 characters) is outside the float64 range")
    (short,) = out_of_range_numbers(b'{"a": 1e400}')
    assert short["msg"].startswith("number 1e400 is outside")


@pytest.mark.parametrize(
    ("body", "records", "batch"),
    [
        pytest.param({"a": 1}, [{"a": 1}], False, id="one-record"),
        pytest.param({"instances": [{"a": 1}, {"a": 2}]}, [{"a": 1}, {"a": 2}], True, id="batch"),
        pytest.param({"instances": [{"a": 1}] * 3}, [{"a": 1}] * 3, True, id="batch-at-the-limit"),
    ],
)
def test_split_records(body: Any, records: list[Any], batch: bool) -> None:
    assert split_records(body, max_batch=3) == (records, batch)


@pytest.mark.parametrize(
    ("body", "error", "status", "loc", "message"),
    [
        pytest.param([1], InvalidInputError, 422, ["body"], "got array", id="array"),
        pytest.param("x", InvalidInputError, 422, ["body"], "got str", id="string"),
        pytest.param({"instances": {}}, InvalidInputError, 422, ["body", "instances"], "must be an array",
                     id="instances-object"),
        pytest.param({"instances": []}, InvalidInputError, 422, ["body", "instances"], "is empty", id="empty"),
        pytest.param({"instances": [{}] * 4}, PayloadTooLargeError, 413, ["body", "instances"],
                     "holds 4 records; MAX_BATCH_SIZE is 3", id="too-many"),
    ],
)
def test_split_records_refuses(body: Any, error: type[Exception], status: int, loc: list[Any], message: str) -> None:
    with pytest.raises(error) as caught:
        split_records(body, max_batch=3)
    assert isinstance(caught.value, InvalidInputError | PayloadTooLargeError)
    assert caught.value.status_code == status and message in caught.value.message
    assert caught.value.details[0]["loc"] == loc


RAW_CASES = [
    pytest.param(GOOD, "application/json", 200, None, id="json"),
    pytest.param(GOOD, "Application/JSON; charset=utf-8", 200, None, id="json-with-parameters"),
    pytest.param(GOOD, "application/vnd.api+json", 415, "got application/vnd.api+json", id="plus-json-refused"),
    pytest.param(GOOD, "text/plain", 415, "expected Content-Type: application/json, got text/plain", id="text"),
    pytest.param(GOOD, "", 415, "got none", id="no-content-type"),
    pytest.param("  \n", "application/json", 400, "request body is empty", id="blank"),
    pytest.param('{"plan": ', "application/json", 400, "body is not valid JSON", id="broken"),
    pytest.param('{"tenure": NaN}', "application/json", 400, "NaN and Infinity are not JSON", id="nan"),
    pytest.param(GOOD.replace("12.0", "1e400"), "application/json", 422,
                 "invalid input at field 'tenure': number 1e400 is outside the float64 range", id="out-of-range"),
    pytest.param('{"instances": [' + GOOD + ", " + GOOD.replace("55.5", "-1e999").replace("12.0", "2e999") + "]}",
                 "application/json", 422, "invalid input at row 1, field 'tenure': number 2e999", id="batch-two"),
    pytest.param("x" * 5000, "application/json", 413, "exceeds the limit of 4096 bytes", id="declared-too-long"),
]


def test_read_json_through_the_app(strict_bundle: tuple[Path, Any]) -> None:
    directory, _ = strict_bundle

    async def run() -> list[tuple[int, str]]:
        async with served(model_dir=directory, max_body_bytes=4096) as client:
            answers = []
            for param in RAW_CASES:
                raw, content_type, _, _ = param.values
                headers = {"content-type": str(content_type)} if content_type else {}
                response = await client.post("/predict", content=str(raw).encode(), headers=headers)
                error = response.json().get("error", {})
                answers.append((response.status_code, error.get("message", "")))
            return answers

    for param, (status, message) in zip(RAW_CASES, asyncio.run(run()), strict=True):
        _, _, expected_status, expected_message = param.values
        assert status == expected_status, (param.id, message)
        if expected_message:
            assert str(expected_message) in message, (param.id, message)
    last = RAW_CASES[-2].values[0]
    assert "(and 1 more)" in asyncio.run(_message(directory, str(last)))


async def _message(directory: Path, raw: str) -> str:
    async with served(model_dir=directory) as client:
        response = await client.post("/predict", content=raw.encode(), headers={"content-type": "application/json"})
        message: str = response.json()["error"]["message"]
        return message
