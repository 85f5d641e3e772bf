"""infer(): requests coalesced into one model call each get their own rows back — ids, probabilities, order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
from prometheus_client.parser import text_string_to_metric_families

from tests.support.in_process import offline_probabilities, served, training_frame


def _records(count: int, offset: int = 0) -> list[dict[str, Any]]:
    """Every record different (its own id, its own numbers), so a swapped answer cannot look right."""
    plans, regions = ["basic", "plus", "pro"], ["north", "south"]
    return [
        {
            "cid": f"customer-{offset + i:04d}",
            "plan": plans[i % 3],
            "region": regions[(i // 3) % 2],
            "tenure": float((7 * i + offset) % 72),
            "charges": 10.0 + 1.25 * i,
        }
        for i in range(count)
    ]


async def _calls(client: httpx.AsyncClient) -> tuple[float, float]:
    text = (await client.get("/metrics")).text
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return samples["modelo_model_call_rows_count"], samples["modelo_request_rows_count"]


def _probabilities(prediction: dict[str, Any]) -> list[float]:
    return [prediction["probabilities"]["0"], prediction["probabilities"]["1"]]


def test_coalesced_requests_get_their_own_id_and_row(strict_bundle: tuple[Path, Any]) -> None:
    directory, fitted = strict_bundle
    singles = _records(96)
    batches = [_records(3, offset=1000 + 10 * i) for i in range(16)]  # requests of several rows, coalesced too

    async def run() -> tuple[list[httpx.Response], list[httpx.Response], float, float]:
        async with served(model_dir=directory, id_field="cid", batch_max_rows=64) as client:
            assert "coalesces" in (await client.get("/model")).json()["micro_batching"]
            calls_before, requests_before = await _calls(client)
            answers = await asyncio.gather(
                *(client.post("/predict", json=r) for r in singles),
                *(client.post("/predict", json={"instances": b}) for b in batches),
            )
            calls_after, requests_after = await _calls(client)
        return (list(answers[: len(singles)]), list(answers[len(singles) :]),
                calls_after - calls_before, requests_after - requests_before)

    single_answers, batch_answers, calls, requests = asyncio.run(run())
    assert requests == len(singles) + len(batches)
    assert calls < requests, "no request was coalesced: this test would prove nothing"
    expected = offline_probabilities(fitted, singles)
    for record, response, offline in zip(singles, single_answers, expected, strict=True):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["id"] == record["cid"]
        assert _probabilities(answer) == offline, record["cid"]
    for rows, response in zip(batches, batch_answers, strict=True):
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["id"] for p in predictions] == [r["cid"] for r in rows]
        assert [_probabilities(p) for p in predictions] == offline_probabilities(fitted, rows)
    prediction_ids = [r.json()["prediction_id"] for r in single_answers]
    prediction_ids += [p["prediction_id"] for r in batch_answers for p in r.json()["predictions"]]
    assert len(set(prediction_ids)) == len(prediction_ids) == len(singles) + 3 * len(batches)


def _phase_sum(text: str, phase: str) -> float:
    return next(
        s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.name == "modelo_inference_phase_seconds_sum" and s.labels.get("phase") == phase
    )


def test_coalesced_requests_without_an_id_field(strict_bundle: tuple[Path, Any]) -> None:
    directory, fitted = strict_bundle
    records = [{k: v for k, v in r.items() if k != "cid"} for r in _records(64)]

    async def run() -> tuple[list[httpx.Response], float, float, float]:
        async with served(model_dir=directory, batch_max_rows=64) as client:
            before = _phase_sum((await client.get("/metrics")).text, "validation")
            calls_before, requests_before = await _calls(client)
            started = time.perf_counter()
            answers = await asyncio.gather(*(client.post("/predict", json=r) for r in records))
            elapsed = time.perf_counter() - started
            calls_after, requests_after = await _calls(client)
            validation = _phase_sum((await client.get("/metrics")).text, "validation") - before
        assert requests_after - requests_before == len(records)
        return list(answers), calls_after - calls_before, validation, elapsed

    answers, calls, validation, elapsed = asyncio.run(run())
    assert calls < len(records), "no request was coalesced"
    assert [r.status_code for r in answers] == [200] * len(records)
    assert all("id" not in r.json() for r in answers)
    assert [_probabilities(r.json()) for r in answers] == offline_probabilities(fitted, records)
    # Each request is charged its share of the one validation pass: together no more than the run took.
    assert 0 < validation <= elapsed


def test_a_refused_request_among_coalesced_ones_spoils_no_other(strict_bundle: tuple[Path, Any]) -> None:
    directory, fitted = strict_bundle
    records: list[dict[str, Any]] = _records(48)
    bodies = [{**r, "plan": "gold"} if i % 5 == 2 else r for i, r in enumerate(records)]

    async def run() -> list[httpx.Response]:
        async with served(model_dir=directory, id_field="cid", batch_max_rows=64) as client:
            return list(await asyncio.gather(*(client.post("/predict", json=b) for b in bodies)))

    answers = asyncio.run(run())
    good = [i for i in range(len(bodies)) if i % 5 != 2]
    expected = dict(zip(good, offline_probabilities(fitted, [records[i] for i in good]), strict=True))
    for i, response in enumerate(answers):
        if i % 5 == 2:
            assert response.status_code == 422, response.text
            assert response.json()["error"]["details"][0]["field"] == "plan"
        else:
            assert response.status_code == 200, response.text
            assert response.json()["id"] == records[i]["cid"]
            assert _probabilities(response.json()) == expected[i]


def test_a_model_not_proven_row_independent_gets_one_call_per_request(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from tests.support.in_process import write_strict_bundle

    preprocessor, _ = write_strict_bundle(tmp_path)
    frame, labels = training_frame()
    model = LogisticRegression().fit(preprocessor.transform(frame), labels)  # BLAS: batching changes low bits
    joblib.dump(model, next(tmp_path.glob("model_*.pkl")))
    records = _records(24)

    async def run() -> tuple[str, list[httpx.Response], float, float]:
        async with served(model_dir=tmp_path, id_field="cid") as client:
            batching = (await client.get("/model")).json()["micro_batching"]
            calls_before, requests_before = await _calls(client)
            answers = await asyncio.gather(*(client.post("/predict", json=r) for r in records))
            calls_after, requests_after = await _calls(client)
            return batching, list(answers), calls_after - calls_before, requests_after - requests_before

    batching, answers, calls, requests = asyncio.run(run())
    assert "one model call per request" in batching
    assert calls == requests == len(records)
    for record, response in zip(records, answers, strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["id"] == record["cid"]
        assert _probabilities(response.json()) == offline_probabilities((preprocessor, model), [record])[0]
