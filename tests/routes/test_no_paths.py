"""No answer and no log line carries a file path: bundles are named by file name, the folder as MODEL_DIR."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.live_server import ROOT, live_server


def test_model_reload_refusals_and_logs_name_files_only(default_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "where-the-operator-keeps-models"
    shutil.copytree(default_bundle, bundle)
    secret_places = (str(bundle), str(tmp_path), str(ROOT))
    with live_server(bundle, tmp_path) as server:
        answers = [server.client.get("/model"), server.client.get("/ready")]
        assert answers[0].json()["demo"] is False and "model_dir" not in answers[0].json()

        (bundle / "model_29990101_000000.pkl").write_bytes(b"\x80\x04not a pickle at all")
        answers.append(server.client.post("/admin/reload"))
        (bundle / "model_29990101_000000.pkl").unlink()
        for artifact in bundle.glob("*.pkl"):
            artifact.rename(bundle / f"{artifact.name}.bak")
        answers.append(server.client.post("/admin/reload"))

        assert [a.status_code for a in answers] == [200, 200, 409, 409]
        assert "model_29990101_000000.pkl" in answers[2].json()["error"]["message"]
        assert "no model_<YYYYMMDD_HHMMSS>.pkl in MODEL_DIR" in answers[3].json()["error"]["message"]
        for answer in answers:
            for place in secret_places:
                assert place not in answer.text, (answer.request.url, answer.text)
        log = server.log_path.read_text()
    assert "model version refused" in log
    for place in secret_places:
        assert place not in log
