"""Two live replicas of the real bundle sharing the machine's PostgreSQL: predictions on one, labels by
customerID ("Yes"/"No") on the other, a graceful stop in between; live accuracy exact on both."""

from __future__ import annotations

import base64
import csv
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from tests.support.databases import postgres_database, psql
from tests.support.fleet import Replica
from tests.support.real_data import REAL_CSV, offline_probabilities, real_records

pytestmark = [pytest.mark.real_bundle, pytest.mark.slow]
ADMIN = "replica-admin-key-0123456789"
ROWS = 400


@pytest.fixture(scope="module")
def shared_db() -> Iterator[str]:
    with postgres_database("modelo_replicas") as url:
        yield url


@pytest.fixture(scope="module")
def replicas(
    real_bundle: Path, real_env_python: str, shared_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Replica]]:
    work = tmp_path_factory.mktemp("replicas")
    env = {
        "MODEL_DIR": str(real_bundle), "API_KEYS": f"ops:{ADMIN}", "ID_FIELD": "customerID", "LABELS": "0:No,1:Yes",
        "DATABASE_URL": shared_db, "STORE_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "STORE_FLUSH_MS": "2000", "LOG_LEVEL": "WARNING", "SHUTDOWN_DRAIN_SECONDS": "0",
    }  # fmt: skip
    group = [Replica(name, {**env, "DATA_DIR": str(work / name)}, real_env_python, work) for name in ("r1", "r2")]
    try:
        for replica in group:
            replica.start()
        for replica in group:
            replica.wait_ready()
        yield group
    finally:
        for replica in group:
            replica.stop()


def _churn() -> dict[str, str]:
    with REAL_CSV.open(newline="") as handle:
        return {row["customerID"]: row["Churn"] for row in csv.DictReader(handle)}


def test_labels_on_one_replica_match_predictions_of_the_other_and_survive_a_graceful_stop(
    replicas: list[Replica], real_bundle: Path, real_env_python: str, shared_db: str, tmp_path: Path
) -> None:
    r1, r2 = replicas
    records = real_records()[:ROWS]
    headers = {"X-API-Key": ADMIN}
    with httpx.Client(base_url=r1.url, headers=headers, timeout=60) as client:
        for start in range(0, ROWS - 50, 50):
            assert client.post("/predict", json={"instances": records[start : start + 50]}).status_code == 200
        for record in records[ROWS - 50 :]:
            assert client.post("/predict", json=record).status_code == 200
        version = client.get("/ready").json()["model_version"]
    # A graceful stop right after the last answer (STORE_FLUSH_MS=2000: not flushed by time yet).
    r1.signal(signal.SIGTERM)
    assert r1.wait_exit() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its graceful shutdown
    assert int(psql(shared_db, "SELECT count(*) FROM predictions")) == ROWS
    churn = _churn()
    items = [{"id": r["customerID"], "label": churn[r["customerID"]]} for r in records]
    body = httpx.post(f"{r2.url}/feedback", json={"items": items}, headers=headers, timeout=60).json()
    counts = body["counts"]
    assert (counts["matched"], counts["unknown"], counts["duplicate"]) == (ROWS, 0, 0), body
    r1.start()
    r1.wait_ready()
    probabilities = offline_probabilities(real_env_python, real_bundle, tmp_path / "offline.json")[version][:ROWS]
    actual = [1 if churn[r["customerID"]] == "Yes" else 0 for r in records]
    predicted = [1 if p >= 0.5 else 0 for p in probabilities]
    for replica in (r1, r2):
        live = httpx.get(f"{replica.url}/monitoring/performance", headers=headers, timeout=30).json()
        assert live["labelled"] == ROWS and live["model_version"] == version
        assert live["accuracy"] == pytest.approx(accuracy_score(actual, predicted), abs=1e-12)
        assert live["precision"] == pytest.approx(precision_score(actual, predicted), abs=1e-12)
        assert live["recall"] == pytest.approx(recall_score(actual, predicted), abs=1e-12)
        assert live["roc_auc"] == pytest.approx(roc_auc_score(actual, probabilities), abs=1e-9)
    audit = httpx.get(f"{r1.url}/predictions", params={"id": records[0]["customerID"]}, headers=headers).json()
    assert audit["predictions"][0]["inputs"] == records[0]
    assert audit["predictions"][0]["outputs"]["probabilities"]["1"] == pytest.approx(probabilities[0], abs=1e-12)
    assert audit["predictions"][0]["label"] == actual[0]
