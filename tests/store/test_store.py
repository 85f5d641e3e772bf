"""The prediction store on SQLite and PostgreSQL: feedback by customer, live accuracy, audit, restarts, keys, scopes."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from tests.store.conftest import new_key, records, running, store_settings
from tests.support.databases import psql


def _labels(rows: list[dict[str, Any]], seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {row["customerID"]: rng.choice(["Yes", "No"]) for row in rows}


async def _predict_all(client: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answered = (await client.post("/predict", json={"instances": rows[:20]})).json()["predictions"]
    for row in rows[20:]:
        answer = await client.post("/predict", json=row)
        assert answer.status_code == 200, answer.text
        answered.append(answer.json())
    return answered


def test_labels_by_customer_give_exact_live_accuracy(
    default_bundle: Path, tmp_path: Path, engine_url: str | None
) -> None:
    rows = records(40)
    truth = _labels(rows, seed=3)

    async def scenario() -> None:
        async with running(store_settings(default_bundle, tmp_path, engine_url)) as (_, clients):
            answered = await _predict_all(clients["client"], rows)
            items = [{"id": cid, "label": label} for cid, label in truth.items()]
            body = (await clients["labeller"].post("/feedback", json={"items": items})).json()
            counts = body["counts"]
            assert (counts["matched"], counts["unknown"], counts["duplicate"]) == (40, 0, 0), body
            live = (await clients["client"].get("/monitoring/performance")).json()
        # The same numbers computed offline from the answers and the labels sent.
        actual = [1 if truth[a["id"]] == "Yes" else 0 for a in answered]
        predicted = [a["prediction"] for a in answered]
        scores = [a["probabilities"]["1"] for a in answered]
        assert live["labelled"] == 40 and live["source"] == "store"
        assert live["accuracy"] == pytest.approx(accuracy_score(actual, predicted), abs=1e-12)
        if any(predicted):
            assert live["precision"] == pytest.approx(precision_score(actual, predicted), abs=1e-12)
        assert live["recall"] == pytest.approx(recall_score(actual, predicted), abs=1e-12)
        assert live["roc_auc"] == pytest.approx(roc_auc_score(actual, scores), abs=1e-12)

    asyncio.run(scenario())


def test_corrections_duplicates_unknown_and_the_audit_trail(
    default_bundle: Path, tmp_path: Path, engine_url: str | None
) -> None:
    rows = records(3, seed=11)

    async def scenario() -> None:
        async with running(store_settings(default_bundle, tmp_path, engine_url)) as (_, clients):
            first = (await clients["client"].post("/predict", json=rows[0])).json()
            later = (await clients["client"].post("/predict", json=rows[0])).json()  # the same customer again
            items = [
                {"id": rows[0]["customerID"], "label": "Yes"},  # the newest prediction for this customer
                {"prediction_id": first["prediction_id"], "label": 0},  # a model class works too
                {"id": "0000-NOBODY", "label": "No"},
            ]
            body = (await clients["admin"].post("/feedback", json={"items": items})).json()  # admin implies feedback
            assert [i["outcome"] for i in body["items"]] == ["matched", "matched", "unknown"]
            assert body["items"][0]["prediction_id"] == later["prediction_id"]
            again = {"items": [{"id": rows[0]["customerID"], "label": "Yes"}]}
            assert (await clients["labeller"].post("/feedback", json=again)).json()["counts"]["duplicate"] == 1
            fix = {"items": [{"id": rows[0]["customerID"], "label": "No"}]}
            assert (await clients["labeller"].post("/feedback", json=fix)).json()["counts"]["corrected"] == 1
            audit = (await clients["admin"].get("/predictions", params={"id": rows[0]["customerID"]})).json()
            one = (await clients["admin"].get(f"/predictions/{first['prediction_id']}")).json()
            missing = await clients["admin"].get("/predictions/nope")
        assert audit["count"] == 2
        newest = audit["predictions"][0]
        assert newest["prediction_id"] == later["prediction_id"] and newest["inputs"] == rows[0]
        assert newest["outputs"]["probabilities"] == later["probabilities"]
        assert newest["model_version"] == later["model_version"] and newest["caller"] == "client"
        assert newest["label"] == 0 and [h["label"] for h in newest["labels"]] == [1, 0]  # history kept
        assert [h["caller"] for h in newest["labels"]] == ["admin", "labeller"]
        assert one["id"] == rows[0]["customerID"] and one["label"] == 0
        assert missing.status_code == 404

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("client", "method", "path", "status"),
    [
        pytest.param("client", "post", "/feedback", 403, id="predict-only-key-cannot-label"),
        pytest.param("client", "get", "/predictions?id=x", 403, id="predict-only-key-cannot-audit"),
        pytest.param("labeller", "get", "/predictions?id=x", 403, id="feedback-key-cannot-audit"),
        pytest.param("labeller", "post", "/predict", 403, id="feedback-key-cannot-predict"),
        pytest.param("labeller", "post", "/feedback", 200, id="feedback-key-labels"),
        pytest.param("admin", "get", "/predictions?id=x", 200, id="admin-audits"),
    ],
)
def test_scopes(default_bundle: Path, tmp_path: Path, client: str, method: str, path: str, status: int) -> None:
    async def scenario() -> int:
        async with running(store_settings(default_bundle, tmp_path, None)) as (_, clients):
            kwargs: dict[str, Any] = {}
            if method == "post":
                kwargs["json"] = {"items": [{"id": "x", "label": "Yes"}]} if path == "/feedback" else records(1)[0]
            return int((await getattr(clients[client], method)(path, **kwargs)).status_code)

    assert asyncio.run(scenario()) == status


def test_nothing_acknowledged_is_lost_across_a_graceful_restart(
    default_bundle: Path, tmp_path: Path, engine_url: str | None
) -> None:
    rows = records(120, seed=5)
    settings = store_settings(default_bundle, tmp_path, engine_url, store_flush_ms=5000)  # nothing flushed by time

    async def scenario() -> tuple[list[str], dict[str, Any]]:
        async with running(settings) as (_, clients):
            answered = await _predict_all(clients["client"], rows)
        async with running(settings) as (_, clients):  # a new process's view: only what the database has
            items = [{"prediction_id": a["prediction_id"], "label": "No"} for a in answered]
            body = (await clients["labeller"].post("/feedback", json={"items": items})).json()
        return [a["prediction_id"] for a in answered], body

    ids, body = asyncio.run(scenario())
    assert len(ids) == 120 and body["counts"]["matched"] == 120 and body["unknown"] == []


def test_prediction_ids_ascend_in_answer_order_and_each_is_stored_and_found(
    default_bundle: Path, tmp_path: Path, engine_url: str | None
) -> None:
    # Ascending ids are what keep the store's prediction_id index growing at its end (README, store cost).
    rows = records(26, seed=21)

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        async with running(store_settings(default_bundle, tmp_path, engine_url)) as (_, clients):
            answered = []
            for row in rows[:6]:
                answered.append((await clients["client"].post("/predict", json=row)).json())
                await asyncio.sleep(0.002)  # the next request in a later millisecond
            answered += (await clients["client"].post("/predict", json={"instances": rows[6:]})).json()["predictions"]
            ids = [a["prediction_id"] for a in answered]
            found = [(await clients["admin"].get(f"/predictions/{pid}")).json() for pid in ids]
        return ids, found

    ids, found = asyncio.run(scenario())
    assert all(re.fullmatch(r"[0-9a-f]{32}", pid) for pid in ids)  # the published pattern
    assert ids[:7] == sorted(ids[:7]) and len(set(ids)) == 26  # a batch's ids share a millisecond, not a value
    assert [f["prediction_id"] for f in found] == ids and [f["inputs"] for f in found] == rows


def test_rotated_keys_still_read_and_find_old_rows(default_bundle: Path, tmp_path: Path) -> None:
    old, new = new_key("k1"), new_key("k2")
    row = records(1, seed=9)[0]

    async def scenario() -> dict[str, Any]:
        async with running(store_settings(default_bundle, tmp_path, None, store_keys=old)) as (_, clients):
            await clients["client"].post("/predict", json=row)
        async with running(store_settings(default_bundle, tmp_path, None, store_keys=f"{new},{old}")) as (_, clients):
            await clients["client"].post("/predict", json=row)
            return (await clients["admin"].get("/predictions", params={"id": row["customerID"]})).json()

    audit = asyncio.run(scenario())
    assert audit["count"] == 2 and all(p["inputs"] == row for p in audit["predictions"])


def test_a_raw_dump_shows_no_input_customer_or_probability(
    default_bundle: Path, tmp_path: Path, engine_url: str | None
) -> None:
    rows = records(30, seed=13)

    async def scenario() -> list[dict[str, Any]]:
        async with running(store_settings(default_bundle, tmp_path, engine_url)) as (_, clients):
            answered = await _predict_all(clients["client"], rows)
            items = [{"id": r["customerID"], "label": "Yes"} for r in rows]
            await clients["labeller"].post("/feedback", json={"items": items})
            return answered

    answered = asyncio.run(scenario())
    if engine_url is None:
        dump = b"".join(p.read_bytes() for p in tmp_path.glob("modelo.sqlite3*")).decode("latin-1")
    else:
        dump = psql(engine_url, "SELECT * FROM predictions") + psql(engine_url, "SELECT * FROM labels")
    assert len(dump) > 1000
    secrets = [r["customerID"] for r in rows] + ["Electronic check", "Month-to-month", "No internet service"]
    secrets += [str(r["MonthlyCharges"]) for r in rows] + [str(r["TotalCharges"]) for r in rows]
    secrets += [repr(a["probabilities"]["1"])[:10] for a in answered]
    found = [s for s in secrets if s in dump]
    assert not found, f"plaintext in the database: {found[:5]}"


def test_store_off_keeps_the_memory_feedback_and_has_no_audit(default_bundle: Path, tmp_path: Path) -> None:
    async def scenario() -> tuple[int, dict[str, Any]]:
        async with running(store_settings(default_bundle, tmp_path, None, prediction_store=False)) as (_, clients):
            answer = (await clients["client"].post("/predict", json=records(1)[0])).json()
            audit = await clients["admin"].get(f"/predictions/{answer['prediction_id']}")
            item = {"prediction_id": answer["prediction_id"], "label": 1}
            body = (await clients["labeller"].post("/feedback", json={"items": [item]})).json()
            return audit.status_code, body

    status, body = asyncio.run(scenario())
    assert status == 404 and body["accepted"] == 1
    assert not list(tmp_path.glob("modelo.sqlite3*"))


def test_a_small_drift_window_says_insufficient_data_instead_of_a_psi(default_bundle: Path, tmp_path: Path) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        settings = store_settings(default_bundle, tmp_path, None, drift_min_rows=50)
        async with running(settings) as (_, clients):
            await clients["client"].post("/predict", json={"instances": records(10)})
            small = (await clients["client"].get("/monitoring/drift")).json()
            await clients["client"].post("/predict", json={"instances": records(60, seed=2)})
            enough = (await clients["client"].get("/monitoring/drift")).json()
        return small, enough

    small, enough = asyncio.run(scenario())
    assert small["status"] == "insufficient data" and small["window_size"] == 10
    assert all(f["psi"] is None for f in small["features"].values()) and small["prediction"]["psi"] is None
    assert "status" not in enough and all(f["psi"] is not None for f in enough["features"].values())


def test_drift_sums_every_replica_sharing_the_database(default_bundle: Path, tmp_path: Path) -> None:
    """Two apps on one PostgreSQL database: each sees the rows of both in /monitoring/drift."""
    from tests.support.databases import postgres_database

    async def scenario(url: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        one = store_settings(default_bundle, tmp_path / "a", url, drift_min_rows=50)
        two = store_settings(default_bundle, tmp_path / "b", url, drift_min_rows=50)
        async with running(one) as (_, first), running(two) as (_, second):
            await first["client"].post("/predict", json={"instances": records(40, seed=1)})
            alone = (await first["client"].get("/monitoring/drift")).json()
            await second["client"].post("/predict", json={"instances": records(30, seed=2)})
            from_two = (await second["client"].get("/monitoring/drift")).json()
            from_one = (await first["client"].get("/monitoring/drift")).json()
        return alone, from_two, from_one

    with postgres_database("modelo_drift") as url:
        alone, from_two, from_one = asyncio.run(scenario(url))
    assert alone["window_size"] == 40 and alone["status"] == "insufficient data"
    assert from_two["window_size"] == 70 and from_one["window_size"] == 70
    assert "status" not in from_one and from_one["features"] == from_two["features"]
    assert from_one["prediction"] == from_two["prediction"]


def test_a_profile_written_while_serving_is_picked_up_without_a_restart(default_bundle: Path, tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle, bundle)
    profile = next(bundle.glob("profile_*.json"))
    written = profile.read_bytes()
    profile.unlink()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        settings = store_settings(bundle, tmp_path, None, drift_min_rows=20)
        async with running(settings) as (_, clients):
            await clients["client"].post("/predict", json={"instances": records(30)})
            before = (await clients["client"].get("/monitoring/drift")).json()
            profile.write_bytes(written)  # what `make profile MODEL_DIR=… DATA=…` writes next to the model
            picked = (await clients["client"].get("/monitoring/drift")).json()  # (or the DRIFT_INTERVAL timer)
            assert picked["window_size"] == 0 and picked["features"]
            await clients["client"].post("/predict", json={"instances": records(30, seed=3)})
            after = (await clients["client"].get("/monitoring/drift")).json()
        return before, after

    before, after = asyncio.run(scenario())
    assert before["features"] == {} and "no drift profile" in before["note"]
    assert after["window_size"] == 30 and all(f["psi"] is not None for f in after["features"].values())


def test_retention_prunes_old_predictions_and_their_labels(default_bundle: Path, tmp_path: Path) -> None:
    from sqlalchemy import func, select, update

    from api.store.schema import labels, predictions

    async def scenario() -> tuple[int, int, int]:
        settings = store_settings(default_bundle, tmp_path, None, store_retention_days=30)
        async with running(settings) as (app, clients):
            answered = (await clients["client"].post("/predict", json={"instances": records(5)})).json()
            items = [{"prediction_id": p["prediction_id"], "label": "Yes"} for p in answered["predictions"]]
            await clients["labeller"].post("/feedback", json={"items": items})
            store = app.state.service.store
            old = [p["prediction_id"] for p in answered["predictions"][:3]]
            with store.engine.begin() as connection:  # three of them were answered 40 days ago
                connection.execute(
                    update(predictions).where(predictions.c.prediction_id.in_(old)).values(
                        created_at=datetime.now(UTC) - timedelta(days=40)
                    )
                )
            deleted = store.prune(30)
            with store.engine.connect() as connection:
                left = connection.execute(select(func.count()).select_from(predictions)).scalar_one()
                left_labels = connection.execute(select(func.count()).select_from(labels)).scalar_one()
        return deleted, left, left_labels

    assert asyncio.run(scenario()) == (3, 2, 2)


def test_open_inference_protocol_answers_are_stored_too(default_bundle: Path, tmp_path: Path) -> None:
    from bench.payloads import v2_body

    rows = records(3, seed=31)

    async def scenario() -> tuple[int, dict[str, Any]]:
        async with running(store_settings(default_bundle, tmp_path, None, model_name="churn")) as (_, clients):
            answer = await clients["client"].post("/v2/models/churn/infer", json=v2_body(rows))
            audit = (await clients["admin"].get("/predictions", params={"id": rows[1]["customerID"]})).json()
        return answer.status_code, audit

    status, audit = asyncio.run(scenario())
    assert status == 200 and audit["count"] == 1
    assert audit["predictions"][0]["inputs"]["customerID"] == rows[1]["customerID"]
