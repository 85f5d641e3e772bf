"""Reason codes on the first user's real bundle: additive on every real row, and served for 7590-VHVEG."""

from __future__ import annotations

import json
import math
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.live_server import ROOT, LiveServer, live_server
from tests.support.real_data import REAL_CSV, VERSIONS, offline_probabilities, real_records

pytestmark = [pytest.mark.real_bundle, pytest.mark.slow]


def test_base_plus_every_contribution_is_the_raw_score_on_every_real_row(
    real_bundle: Path, real_env_python: str, tmp_path: Path
) -> None:
    """Both models, all 7 043 rows, through the service's loader in the bundle's own environment (sklearn 1.1.3)."""
    sent = tmp_path / "records.json"
    sent.write_text(json.dumps(real_records()))
    script = ROOT / "tests" / "support" / "offline_explain.py"
    runs = {
        version: subprocess.Popen(
            [real_env_python, str(script), str(real_bundle), str(REAL_CSV), str(sent), str(tmp_path / version), version]
        )
        for version in VERSIONS  # one process per model: two cores, half the wall time
    }
    assert all(run.wait(timeout=900) == 0 for run in runs.values())
    for version in VERSIONS:
        found = json.loads((tmp_path / version).read_text())[version]
        raw = np.asarray(found["raw_score"])
        assert len(raw) == 7043
        total = np.asarray(found["base"]) + np.asarray(found["sum"])
        np.testing.assert_allclose(total, raw, rtol=0, atol=1e-9)
        # The reasons are the user's 20 columns, not the 5 654 encoded ones.
        assert len(found["columns"]) == 20
        ranked = [c for _, c in sorted(zip(found["mean_abs"], found["columns"], strict=True), reverse=True)]
        assert "Contract" in ranked[:3], ranked
        # Neither model ever splits on a customer ID (README of the real bundle): no share, ever.
        assert found["mean_abs"][found["columns"].index("customerID")] == 0.0


def test_an_explained_prediction_for_7590_vhveg(real_server: LiveServer, real_env_python: str, real_bundle: Path,
                                               tmp_path: Path) -> None:
    record = next(r for r in real_records() if r["customerID"] == "7590-VHVEG")
    plain = real_server.client.post("/predict", json=record)
    explained = real_server.client.post("/predict", params={"explain": 3}, json=record)
    everything = real_server.client.post("/predict", params={"explain": 1000}, json=record)
    assert plain.status_code == explained.status_code == everything.status_code == 200, explained.text
    body = explained.json()
    # Explaining never changes the answer: the same bits as without, and as the user's own pipeline.
    assert body["probabilities"] == plain.json()["probabilities"]
    offline = offline_probabilities(real_env_python, real_bundle, tmp_path / "offline.json")
    version = body["model_version"]
    assert body["probabilities"]["1"] == offline[version][0]
    reasons = body["reasons"]
    assert len(reasons) == 3
    assert all(r["value"] == record[r["feature"]] for r in reasons)
    shares = [abs(r["contribution"]) for r in reasons]
    assert shares == sorted(shares, reverse=True)
    # explain larger than the columns: all 20, and they add up to the model's logit.
    every = everything.json()["reasons"]
    assert len(every) == 20
    assert every[:3] == reasons
    p = body["probabilities"]["1"]
    logit = math.log(p / (1 - p))
    assert body["base_value"] + sum(r["contribution"] for r in every) == pytest.approx(logit, abs=1e-9)


def test_reasons_and_answer_come_from_one_model_version_during_swaps(
    real_bundle: Path, real_env_python: str, tmp_path: Path
) -> None:
    """Explained requests while the two real versions are swapped back and forth: every answer is one
    version's, whole. Both models share the preprocessor, so a mix (probabilities of one, contributions
    of the other) would break base + contributions = logit(P) and the offline probability of the version named.
    """
    offline = offline_probabilities(real_env_python, real_bundle, tmp_path / "offline.json")
    records = real_records()[:20]
    failures: list[str] = []
    answered: list[str] = []
    stop = threading.Event()

    def explain_in_a_loop(server: LiveServer, offset: int) -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}, timeout=60) as client:
            index = offset
            while not stop.is_set():
                row = index % len(records)
                index += 1
                try:
                    response = client.post("/predict", params={"explain": 100}, json=records[row])
                except httpx.HTTPError as exc:  # the loop must end the test, never hang it
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return
                if response.status_code != 200:
                    failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    continue
                body: dict[str, Any] = response.json()
                version, p = body["model_version"], body["probabilities"]["1"]
                answered.append(version)
                total = body["base_value"] + sum(r["contribution"] for r in body["reasons"])
                if p != offline[version][row] or abs(total - math.log(p / (1 - p))) > 1e-9:
                    failures.append(f"row {row} of {version}: P {p}, base + contributions {total}")

    # A model load can hold the server's GIL for seconds under a loaded CI box; a keep-alive close racing
    # the next request is ordinary HTTP, not what this test is about: keep connections open longer.
    with live_server(
        real_bundle, tmp_path, python=real_env_python, id_field="customerID", keepalive_timeout_seconds="60"
    ) as server:
        threads = [threading.Thread(target=explain_in_a_loop, args=(server, i * 7)) for i in range(2)]
        for thread in threads:
            thread.start()
        try:
            for version in (*VERSIONS, *VERSIONS):
                activated = server.client.post(f"/admin/models/{version}/activate")
                assert activated.status_code == 200, activated.text
                seen = len(answered)
                while len(answered) < seen + 5 and not failures:
                    stop.wait(0.05)
            log = server.log_lines()
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
    assert not failures, (failures[:3], [line for line in log if '"log.level":"info"' not in line][-20:])
    assert set(answered) == set(VERSIONS)
