"""`python -m bench.run --quick --only default` end to end: wrk against real servers, one table out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live_server import ROOT

pytestmark = pytest.mark.slow


def test_quick_bench_measures_the_service_and_the_baseline(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk); the load benchmark needs it")
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "default", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    table = (tmp_path / "latest.md").read_text()
    ours = [m for m in results["measurements"] if m["server"] == "service"]
    assert {m["scenario"] for m in ours} == {
        "1 row, c1", "1 row, c16", "1 row, c64", "100 rows, c4", "1 row, c1, explain=3"
    }
    for row in ours:
        assert row["requests_per_s"] > 0, row
        assert row["non_2xx"] == 0, row
    assert any(m["server"] == "baseline" and m["requests_per_s"] > 0 for m in results["measurements"])
    servers = {s["server"]: s for s in results["servers"]}
    assert servers["service"]["answers"].startswith("yes"), servers
    assert servers["baseline"]["answers"].startswith("yes"), servers
    assert servers["service"]["rss_mb"] > 0 and servers["service"]["ready_seconds"] > 0
    assert {f["step"] for f in results["floors"]["default"]} >= {"compiled transform", "model predict"}
    assert "| default | this service | 1 row, c1 |" in table
    # Reason codes: the explained single row beside the plain one, and the per-row cost in the floors.
    assert "## Reason codes (this service, same run)" in table and "| default | 1 row, c1 |" in table
    assert any(f["step"].startswith("explain=3") for f in results["floors"]["default"])
    assert "WARNING" not in done.stdout, done.stdout
