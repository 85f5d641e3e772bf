"""End to end with a real Prometheus: the real bundle, real traffic, a drifted stream and feedback."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.acceptance.test_real_bundle import real_records
from tests.conftest import REAL_CSV
from tests.support.live_server import ROOT, LiveServer, free_port, live_server

pytestmark = [
    pytest.mark.real_bundle,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus not installed (CI: apt-get install -y prometheus)"
    ),
]
WINDOW = 500


def _labels() -> dict[str, int]:
    import csv

    with REAL_CSV.open(newline="") as handle:
        return {row["customerID"]: int(row["Churn"] == "Yes") for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def profiled_bundle(real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real bundle with a drift profile made by `make profile` from the real CSV."""
    bundle = tmp_path_factory.mktemp("profiled") / "bundle"
    shutil.copytree(real_bundle, bundle)
    subprocess.run(
        [real_env_python, "-m", "training.profile", "--model-dir", str(bundle), "--data", str(REAL_CSV)],
        check=True,
        cwd=ROOT,
    )
    return bundle


@pytest.fixture(scope="module")
def server(
    profiled_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with live_server(
        profiled_bundle,
        tmp_path_factory.mktemp("server"),
        python=real_env_python,
        drift_window=str(WINDOW),
        drift_interval_seconds="0.5",
        id_field="customerID",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's Prometheus on loopback, scraping the service every second with our alert rules (no `for` delay)."""
    work = tmp_path_factory.mktemp("prometheus")
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    (work / "alerts.yml").write_text(yaml.safe_dump(rules))
    target = server.url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(work / "alerts.yml")],
        "scrape_configs": [{"job_name": "modelo-api", "static_configs": [{"targets": [target]}]}],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _eventually(check: Any, timeout: float = 60.0) -> Any:
    """Poll with a bound: the first scrape lands seconds after Prometheus starts."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def _send(server: LiveServer, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for start in range(0, len(records), 50):
        response = server.client.post("/predict", json={"instances": records[start : start + 50]})
        assert response.status_code == 200, response.text
        rows.extend(response.json()["predictions"])
    return rows


def test_drift_accuracy_and_alerts_through_prometheus(server: LiveServer, prometheus: str) -> None:
    records = real_records()
    random.Random(11).shuffle(records)
    normal = records[:WINDOW]
    answered = _send(server, normal)

    drift = server.client.get("/monitoring/drift").json()
    assert drift["window_size"] == WINDOW
    assert max(f["psi"] for f in drift["features"].values()) <= 0.1, drift
    assert drift["prediction"]["psi"] <= 0.1

    labels = _labels()
    labelled = answered[:300]
    feedback = server.client.post(
        "/feedback", json={"items": [{"prediction_id": r["prediction_id"], "label": labels[r["id"]]} for r in labelled]}
    )
    assert feedback.status_code == 200 and feedback.json()["accepted"] == 300
    expected_accuracy = sum(r["prediction"] == labels[r["id"]] for r in labelled) / 300
    performance = server.client.get("/monitoring/performance").json()
    assert performance["labelled"] == 300
    assert performance["accuracy"] == expected_accuracy
    unknown = server.client.post("/feedback", json={"items": [{"prediction_id": "nope", "label": 1}]}).json()
    assert unknown["unknown"] == ["nope"]

    assert _eventually(lambda: _query(prometheus, 'modelo_drift_window_rows{job="modelo-api"} == 500'))
    assert not _query(prometheus, 'modelo_drift_psi{job="modelo-api"} > 0.1')
    accuracy = _eventually(lambda: _query(prometheus, "modelo_live_accuracy"))
    assert float(accuracy[0]["value"][1]) == pytest.approx(expected_accuracy, abs=1e-12)
    assert _eventually(
        lambda: _query(prometheus, 'sum(modelo_http_request_duration_seconds_count{route="/predict"}) >= 10')
    )
    rows_served = _eventually(lambda: _query(prometheus, "sum(modelo_predictions_total) >= 500"))
    assert float(rows_served[0]["value"][1]) >= WINDOW

    drifted = [{**r, "tenure": 1, "Contract": "Month-to-month"} for r in records[WINDOW : 2 * WINDOW]]
    _send(server, drifted)
    drift = server.client.get("/monitoring/drift").json()
    assert drift["features"]["tenure"]["psi"] > 0.2 and drift["features"]["Contract"]["psi"] > 0.2
    assert _eventually(lambda: _query(prometheus, 'modelo_drift_psi{feature="tenure"} > 0.2'))

    def drift_alert_firing() -> bool:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return any(a["labels"]["alertname"] == "ModeloFeatureDrift" and a["state"] == "firing" for a in alerts)

    assert _eventually(drift_alert_firing)
