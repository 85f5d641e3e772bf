"""A full inference queue sheds load with 503 + Retry-After instead of growing latency without bound."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_server import LiveServer, live_server

ROWS = 200


@pytest.fixture(scope="module")
def small_queue_server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # The queue holds at most MAX_BATCH_SIZE rows (one full request) besides the call in progress.
    with live_server(
        default_bundle, tmp_path_factory.mktemp("shedding"), queue_max_rows="1", max_batch_size=str(ROWS)
    ) as server:
        yield server


def test_a_full_queue_answers_503_with_retry_after_and_every_other_answer_is_exact(
    small_queue_server: LiveServer,
) -> None:
    server = small_queue_server
    example = server.client.get("/model").json()["input_schema"]["example"]
    body = {"instances": [example] * ROWS}
    expected = server.client.post("/predict", json=body).json()["predictions"][0]["probabilities"]

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}, timeout=30) as client:
            return client.post("/predict", json=body)

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(send, range(96)))
    statuses = {r.status_code for r in answers}
    assert statuses <= {200, 503}, statuses
    shed = [r for r in answers if r.status_code == 503]
    assert shed, "nothing was shed: the queue bound is not enforced"
    assert any(r.status_code == 200 for r in answers)
    for response in shed:
        assert response.headers["retry-after"] == "1"
        error: dict[str, Any] = response.json()["error"]
        assert error["code"] == "overloaded"
        assert "QUEUE_MAX_ROWS" in error["message"]
    for response in answers:
        if response.status_code == 200:
            assert {tuple(p["probabilities"].items()) for p in response.json()["predictions"]} == {
                tuple(expected.items())
            }
    scrape = text_string_to_metric_families(server.client.get("/metrics").text)
    counted = {s.labels.get("code"): s.value for f in scrape for s in f.samples if s.name == "modelo_errors_total"}
    assert counted["overloaded"] == len(shed)
