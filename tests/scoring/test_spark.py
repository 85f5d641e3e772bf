"""The Spark engine (mapInPandas in local[2], the machine's Java) gives the in-process scorer's answers exactly.

Real rows, in the real bundle's scikit-learn 1.1.3 environment, split into several partitions so
the rejected rows' numbers are rebuilt across partitions; two rows are made invalid on purpose.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.scoring.test_score_real import real_score_python  # noqa: F401 - the shared fixture
from tests.support.live_server import ROOT
from tests.support.real_data import REAL_CSV

pytestmark = [pytest.mark.real_bundle, pytest.mark.slow]
BAD = {10: ("tenure", "ten"), 5000: ("SeniorCitizen", "maybe")}  # 0-based data rows


def _read(path: Path) -> list[dict[str, str]]:
    parts = sorted(path.glob("part-*.csv")) if path.is_dir() else [path]
    rows: list[dict[str, str]] = []
    for part in parts:
        with part.open(newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def test_spark_scores_equal_the_in_process_scorer(
    real_score_python: str, real_bundle: Path, tmp_path: Path  # noqa: F811
) -> None:
    if shutil.which("java") is None:
        pytest.skip("Java is not installed: Spark (local mode) needs a JVM (apt-get install openjdk-17-jre-headless)")
    probe = subprocess.run([real_score_python, "-c", "import pyspark"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.fail("pyspark is not installed in the real bundle's test environment (requirements-spark.txt)")
    with REAL_CSV.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for row, (name, value) in BAD.items():
        rows[row + 1][header.index(name)] = value
    source = tmp_path / "input.csv"
    with source.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)

    def score(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [real_score_python, "-m", "api.score", str(source), str(out), "--model-dir", str(real_bundle),
             "--id", "customerID", "--progress", "never", *extra],
            cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})},
        )

    local = score(tmp_path / "local.csv")
    spark_env = {
        "SPARK_MASTER": "local[2]",
        # Several partitions from one small file: row numbers of rejects must survive the split.
        "PYSPARK_SUBMIT_ARGS": "--conf spark.sql.files.maxPartitionBytes=200000 pyspark-shell",
    }
    distributed = score(tmp_path / "spark.csv", "--engine", "spark", env=spark_env)
    assert local.returncode == 3, local.stderr
    assert distributed.returncode == 3, distributed.stderr[-3000:]
    assert "scored 7041 of 7043 rows" in distributed.stderr
    expected, got = _read(tmp_path / "local.csv"), _read(tmp_path / "spark.csv")
    assert len(got) == len(expected) == 7041
    assert len(list((tmp_path / "spark.csv").glob("part-*.csv"))) > 1  # the rows really were split
    assert [r["customerID"] for r in got] == [r["customerID"] for r in expected]
    assert [float(r["probability_1"]) for r in got] == [float(r["probability_1"]) for r in expected]
    assert [r["prediction"] for r in got] == [r["prediction"] for r in expected]
    assert {r["model_version"] for r in got} == {r["model_version"] for r in expected}
    rejects = _read(tmp_path / "spark.csv.rejects.csv")
    assert rejects == _read(tmp_path / "local.csv.rejects.csv")
    assert [(int(r["row"]), r["field"]) for r in rejects] == [(row + 1, name) for row, (name, _) in sorted(BAD.items())]
