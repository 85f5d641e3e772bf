"""The user's real CSV (all 7 043 rows, blank TotalCharges included) scored as a user would, in the bundle's env.

The reference is the user's own offline pipeline (preprocessor.transform + booster.predict), run in
the same environment: every probability must be equal, bit for bit.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live_server import ROOT
from tests.support.real_data import REAL_CSV, VERSIONS, offline_probabilities

pytestmark = [pytest.mark.real_bundle, pytest.mark.slow]


@pytest.fixture(scope="session")
def real_score_python(real_bundle: Path) -> str:
    """The real bundle's scikit-learn 1.1.3 stack with the scoring libraries (the env `make test` uses too)."""
    env_dir = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ensure_env.py"), "--dev", str(real_bundle)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    return str(Path(env_dir) / "bin" / "python")


@pytest.fixture(scope="module")
def offline(
    real_env_python: str, real_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[float]]:
    return offline_probabilities(real_env_python, real_bundle, tmp_path_factory.mktemp("offline") / "p.json")


def _score(python: str, bundle: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "api.score", str(REAL_CSV), str(out), "--model-dir", str(bundle), "--progress", "never", *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_every_real_row_equals_the_users_offline_pipeline(
    version: str, real_score_python: str, real_bundle: Path, offline: dict[str, list[float]], tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    done = _score(real_score_python, real_bundle, out, "--id", "customerID", "--model-version", version,
                  "--chunk-rows", "1000")
    assert done.returncode == 0, done.stderr
    assert "scored 7043 of 7043 rows" in done.stderr
    with REAL_CSV.open(newline="") as handle:
        source = list(csv.DictReader(handle))
    assert sum(1 for row in source if not row["TotalCharges"].strip()) == 11  # the blanks are in the file
    with out.open(newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert [row["customerID"] for row in scored] == [row["customerID"] for row in source]
    assert [float(row["probability_1"]) for row in scored] == offline[version]
    assert {row["model_version"] for row in scored} == {version}
    assert [int(row["prediction"]) for row in scored] == [int(p >= 0.5) for p in offline[version]]


def test_parquet_output_holds_the_same_doubles(
    real_score_python: str, real_bundle: Path, offline: dict[str, list[float]], tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    done = _score(real_score_python, real_bundle, out, "--keep-input", "--model-version", VERSIONS[0])
    assert done.returncode == 0, done.stderr
    read = subprocess.run(
        [real_score_python, "-c", "import sys, json, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]);"
         "print(json.dumps({'p': t.column('probability_1').to_pylist(), 'cols': t.column_names}))", str(out)],
        capture_output=True, text=True, check=True,
    )
    import json

    result = json.loads(read.stdout)
    assert result["p"] == offline[VERSIONS[0]]
    assert result["cols"][:2] == ["customerID", "gender"] and "Churn" in result["cols"]
