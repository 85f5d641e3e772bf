"""Fairness between callers: round-robin by rows, slices that give exact answers, quotas that answer 429."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.model.fairness import CallerQuotas, FairQueue
from tests.support.live_server import LiveServer, live_server


@dataclass(eq=False)
class Job:
    caller: str
    rows: int
    next_row: int = 0


def _drain(queue: FairQueue[Job], **take: Any) -> list[list[tuple[Job, int, int]]]:
    calls = []
    while queue.rows:
        calls.append(queue.take(64, **take))
    return calls


def test_single_rows_go_before_a_big_batch_is_done_and_its_slices_cover_it_in_order() -> None:
    queue: FairQueue[Job] = FairQueue(quantum=64)
    big = Job("greedy", 1000)
    queue.push(big)
    singles = [Job(f"small-{i % 3}", 1) for i in range(9)]
    for job in singles:
        queue.push(job)
    calls = _drain(queue, slice_rows=256, split=lambda _job: True)
    assert all(sum(stop - start for _, start, stop in call) <= 256 for call in calls)
    position = {id(job): i for i, call in enumerate(calls) for job, _, _ in call}
    last_big = max(i for i, call in enumerate(calls) if any(job is big for job, _, _ in call))
    assert max(position[id(job)] for job in singles) < last_big, "single rows waited for the whole batch"
    pieces = [(start, stop) for call in calls for job, start, stop in call if job is big]
    assert pieces[0][0] == 0 and pieces[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


def test_no_caller_starves_and_greedy_callers_share_rows_evenly() -> None:
    queue: FairQueue[Job] = FairQueue(quantum=64)
    for caller in ("a", "b", "c"):
        for _ in range(3):
            queue.push(Job(caller, 1000))
    served = {"a": 0, "b": 0, "c": 0}
    while queue.rows > 3000:  # while all three still wait, none gets more than a quantum ahead
        for job, start, stop in queue.take(64, slice_rows=256, split=lambda _job: True):
            served[job.caller] += stop - start
        assert max(served.values()) - min(served.values()) <= 64, served


def test_whole_requests_when_a_model_cannot_be_sliced_and_fifo_for_one_caller() -> None:
    queue: FairQueue[Job] = FairQueue(quantum=64)
    big, small = Job("greedy", 500), Job("small", 1)
    queue.push(big)
    queue.push(small)
    calls = _drain(queue, slice_rows=256)
    assert [[(job, start, stop) for job, start, stop in call] for call in calls] == [[(small, 0, 1)], [(big, 0, 500)]]
    alone = [Job("one", rows) for rows in (1, 1, 30, 40, 1)]
    for job in alone:
        queue.push(job)
    calls = _drain(queue, slice_rows=256)
    assert [[job.rows for job, _, _ in call] for call in calls] == [[1, 1, 30], [40, 1]]


def test_quotas_refuse_with_retry_after() -> None:
    quotas = CallerQuotas(rows_per_second=100, max_rows_in_flight=150, burst_rows=100)
    quotas.charge("a", 100)
    with pytest.raises(Exception) as refused:
        quotas.charge("a", 100)  # in flight: 100 + 100 > 150
    assert refused.value.status_code == 429 and "IN_FLIGHT" in str(refused.value)  # type: ignore[attr-defined]
    quotas.release("a", 100)
    with pytest.raises(Exception) as refused:
        quotas.charge("a", 100)  # the bucket is empty: about one second to refill
    assert refused.value.headers()["Retry-After"] == "1"  # type: ignore[attr-defined]
    quotas.charge("b", 100)  # another caller has its own quota


# --- over HTTP, on the default bundle --------------------------------------------------------------

CALLERS = {f"batch{i}": f"key-batch-{i}-0123456789" for i in range(4)} | {
    f"single{i}": f"key-single-{i}-0123456789" for i in range(2)
}
BATCH = 1000


@pytest.fixture(scope="module")
def fair_server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    keys = ",".join(f"{name}:{key}" for name, key in CALLERS.items())
    with live_server(default_bundle, tmp_path_factory.mktemp("fair"), api_keys=keys) as server:
        yield server


def _client(server: LiveServer, caller: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": CALLERS[caller]}, timeout=60)


def _records(server: LiveServer) -> list[dict[str, Any]]:
    with _client(server, "single0") as client:
        described = client.get("/model").json()["input_schema"]
    numeric = [f["name"] for f in described["fields"] if f["kind"] == "numeric"]
    example = described["example"]
    return [
        {**example, "customerID": f"row-{i}", **{n: float(i % 70) + 0.25 * j for j, n in enumerate(numeric)}}
        for i in range(BATCH)
    ]


def test_greedy_batches_do_not_hold_back_single_rows_and_every_answer_stays_exact(fair_server: LiveServer) -> None:
    records = _records(fair_server)
    with _client(fair_server, "single0") as client:
        expected = client.post("/predict", json={"instances": records}).json()["predictions"]
        single_expected = client.post("/predict", json=records[7]).json()["probabilities"]
        alone: list[float] = []
        for _ in range(30):
            started = time.perf_counter()
            assert client.post("/predict", json=records[7]).status_code == 200
            alone.append(time.perf_counter() - started)
    stop = threading.Event()
    batch_latency: list[float] = []
    single_latency: list[float] = []
    answered = dict.fromkeys(CALLERS, 0)
    problems: list[str] = []

    def batch_caller(name: str) -> None:
        with _client(fair_server, name) as client:
            while not stop.is_set():
                started = time.perf_counter()
                response = client.post("/predict", json={"instances": records})
                if response.status_code == 429:
                    continue
                batch_latency.append(time.perf_counter() - started)
                rows = response.json()["predictions"]
                same = [{**row, "prediction_id": got["prediction_id"]} for row, got in zip(expected, rows, strict=True)]
                if rows != same:
                    problems.append(f"{name}: a sliced answer differs from the unloaded one")
                answered[name] += 1

    def single_caller(name: str) -> None:
        with _client(fair_server, name) as client:
            while not stop.is_set():
                started = time.perf_counter()
                response = client.post("/predict", json=records[7])
                single_latency.append(time.perf_counter() - started)
                if response.json()["probabilities"] != single_expected:
                    problems.append(f"{name}: a single row's answer changed under load")
                answered[name] += 1

    threads = [threading.Thread(target=batch_caller, args=(n,)) for n in CALLERS if n.startswith("batch")]
    threads += [threading.Thread(target=single_caller, args=(n,)) for n in CALLERS if n.startswith("single")]
    for thread in threads:
        thread.start()
    time.sleep(8)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    assert problems == []
    batches = [answered[n] for n in CALLERS if n.startswith("batch")]
    assert min(batches) >= 1 and max(batches) <= 3 * min(batches) + 2, answered  # nobody starves
    loaded, unloaded, batch = (statistics.median(x) for x in (single_latency, alone, batch_latency))
    # Without fairness a single row waits behind the batches queued before it (about a batch's latency).
    assert loaded < batch / 3, (loaded, unloaded, batch)
