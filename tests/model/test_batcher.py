"""Micro-batching: concurrent requests share model calls and get exactly the unbatched answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_server import LiveServer


def _records(server: LiveServer, count: int) -> list[dict[str, Any]]:
    example = server.client.get("/model").json()["input_schema"]["example"]
    numeric = [
        f["name"] for f in server.client.get("/model").json()["input_schema"]["fields"] if f["kind"] == "numeric"
    ]
    return [{**example, **{name: float(i % 70) + 0.25 * j for j, name in enumerate(numeric)}} for i in range(count)]


def _model_calls(server: LiveServer) -> tuple[float, float]:
    text = httpx.get(f"{server.url}/metrics").text
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return samples["modelo_model_call_rows_count"], samples["modelo_request_rows_count"]


def test_concurrent_answers_equal_sequential_answers(default_server: LiveServer) -> None:
    assert "coalesces" in default_server.client.get("/model").json()["micro_batching"]
    records = _records(default_server, 240)
    sequential = [default_server.client.post("/predict", json=r).json()["probabilities"] for r in records]
    calls_before, requests_before = _model_calls(default_server)

    def send(record: dict[str, Any]) -> dict[str, float]:
        with httpx.Client(base_url=default_server.url, headers={"X-API-Key": default_server.api_key}) as client:
            response = client.post("/predict", json=record)
            assert response.status_code == 200, response.text
            result: dict[str, float] = response.json()["probabilities"]
            return result

    with ThreadPoolExecutor(max_workers=32) as pool:
        concurrent = list(pool.map(send, records))
    assert concurrent == sequential
    calls_after, requests_after = _model_calls(default_server)
    assert requests_after - requests_before == len(records)
    assert calls_after - calls_before < len(records), "no request was coalesced"


def test_batches_and_singles_agree(default_server: LiveServer) -> None:
    records = _records(default_server, 50)
    batch = default_server.client.post("/predict", json={"instances": records}).json()["predictions"]
    singles = [default_server.client.post("/predict", json=r).json() for r in records]
    assert [b["probabilities"] for b in batch] == [s["probabilities"] for s in singles]
    assert [b["prediction"] for b in batch] == [s["prediction"] for s in singles]


def test_a_bad_request_in_a_coalesced_batch_gets_its_own_error_and_spoils_no_other(default_server: LiveServer) -> None:
    records = _records(default_server, 120)
    fields = default_server.client.get("/model").json()["input_schema"]["fields"]
    numeric = next(f["name"] for f in fields if f["kind"] == "numeric")
    categorical = next(f["name"] for f in fields if f["kind"] == "categorical")
    # Every 7th request is refused, every 5th carries an unseen category (answered, with a warning).
    bodies: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        if i % 7 == 3:
            bodies.append({**record, numeric: "not a number"})
        elif i % 5 == 1:
            bodies.append({**record, categorical: f"never-seen-{i}"})
        else:
            bodies.append(record)
    sequential = [default_server.client.post("/predict", json=body) for body in bodies]
    calls_before, requests_before = _model_calls(default_server)

    def send(body: dict[str, Any]) -> httpx.Response:
        with httpx.Client(base_url=default_server.url, headers={"X-API-Key": default_server.api_key}) as client:
            return client.post("/predict", json=body)

    with ThreadPoolExecutor(max_workers=32) as pool:
        concurrent = list(pool.map(send, bodies))
    for i, (alone, together) in enumerate(zip(sequential, concurrent, strict=True)):
        assert together.status_code == alone.status_code == (422 if i % 7 == 3 else 200), together.text
        if together.status_code == 422:
            details = together.json()["error"]["details"]
            assert [d["field"] for d in details] == [numeric]
            assert details == alone.json()["error"]["details"]
            continue
        mine, theirs = together.json(), alone.json()
        assert mine["probabilities"] == theirs["probabilities"]
        assert mine.get("warnings") == theirs.get("warnings")
        assert ("warnings" in mine) is (i % 5 == 1)
    calls_after, requests_after = _model_calls(default_server)
    assert requests_after - requests_before == sum(r.status_code == 200 for r in concurrent)
    assert calls_after - calls_before < requests_after - requests_before, "no request was coalesced"
