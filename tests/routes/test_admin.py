"""Safe updates: a reload swaps in a new bundle atomically, and a bad bundle leaves the old one serving."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.live_server import live_server


def test_reload_swaps_and_refuses_safely(default_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle, bundle)
    model = next(bundle.glob("model_*.pkl"))
    with live_server(bundle, tmp_path) as server:
        before = server.client.get("/ready").json()["model_version"]
        example = server.client.get("/model").json()["input_schema"]["example"]
        baseline = server.client.post("/predict", json=example).json()["probabilities"]

        (bundle / "model_29990101_000000.pkl").write_bytes(b"\x80\x04not a pickle at all")
        refused = server.client.post("/admin/reload")
        assert refused.status_code == 409, refused.text
        assert before in refused.json()["error"]["message"]
        assert server.client.get("/ready").json()["model_version"] == before
        assert server.client.post("/predict", json=example).json()["probabilities"] == baseline

        (bundle / "model_29990101_000000.pkl").unlink()
        shutil.copy(model, bundle / "model_29990102_000000.pkl")
        reloaded = server.client.post("/admin/reload")
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json() == {"status": "reloaded", "previous_version": before, "model_version": "29990102_000000"}
        answer = server.client.post("/predict", json=example).json()
        assert answer["model_version"] == "29990102_000000"
        assert answer["probabilities"] == baseline
        assert 'modelo_model_loads_total{outcome="failure",trigger="reload"} 1.0' in server.client.get("/metrics").text
