"""The published OpenAPI document holds: Schemathesis, every check on, against the live service.

Positive and negative data over every operation, in all of Schemathesis' phases (examples,
coverage, fuzzing; stateful where links exist), with a fixed seed. A failure here is a place where
the service and its own document disagree: fix the service (or a document that lies), never the check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer, live_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 20261204
MIN_CASES = 1000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def contract_server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # A small MAX_BATCH_SIZE keeps the generated batches (up to maxItems records) quick to answer.
    with live_server(default_bundle, tmp_path_factory.mktemp("contract-server"), max_batch_size="50") as server:
        yield server


def test_schemathesis_finds_no_failure(contract_server: LiveServer, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
        f"{contract_server.url}/openapi.json",
        "--header", f"X-API-Key: {contract_server.api_key}",
        "--checks", "all",
        "--mode", "all",  # positive and negative data
        "--seed", str(SEED),
        "--max-examples", "60",
        "--workers", "2",
        "--no-color",
        "--generation-database", "none",  # nothing written into the checkout
        "--continue-on-failure",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    output = run.stdout[-20000:]
    summary = json.loads(report.read_text())
    assert summary["failures"] == [], output
    assert summary["errors"] == [], output
    assert run.returncode == 0, output
    operations = summary["operations"]
    assert operations["tested"] == operations["total"] == operations["selected"], output
    assert summary["test_cases"]["generated"] >= MIN_CASES, output
