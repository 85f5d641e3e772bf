"""``--explain`` on the real bundle (1 000-tree LightGBM, scikit-learn 1.1.3 env), a few hundred real rows.

Explaining costs milliseconds per row on this model, so the file is the CSV's first 180 rows plus
its 11 blank ``TotalCharges`` rows, one made invalid: enough to cross chunks and hit the imputer.
"""

from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

import pytest

from api.scoring.reasons import reason_names
from tests.scoring.test_score_real import real_score_python  # noqa: F401 - the shared fixture
from tests.support.live_server import ROOT
from tests.support.real_data import REAL_CSV

pytestmark = pytest.mark.real_bundle
pq = pytest.importorskip("pyarrow.parquet", reason="the scoring dependencies are not installed")

BLANKS = (488, 753, 936, 1082, 1340, 3331, 3826, 4380, 5218, 6670, 6754)  # 0-based data rows, TotalCharges " "
BAD = 20  # tenure "ten": rejected
SCORES = ["customerID", "prediction", "probability_0", "probability_1", "model_version"]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    everything = _read(REAL_CSV)
    rows = everything[:180] + [everything[i] for i in BLANKS]
    assert all(not everything[i]["TotalCharges"].strip() for i in BLANKS)
    rows[BAD] = {**rows[BAD], "tenure": "ten"}
    path = tmp_path_factory.mktemp("explain-real") / "input.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, rows


def test_real_reasons_add_up_beside_identical_probabilities(
    real_score_python: str, real_bundle: Path, source: tuple[Path, list[dict[str, str]]], tmp_path: Path  # noqa: F811
) -> None:
    path, rows = source

    def score(out: Path, *extra: str) -> str:
        done = subprocess.run(
            [real_score_python, "-m", "api.score", str(path), str(out), "--model-dir", str(real_bundle),
             "--id", "customerID", "--progress", "never", *extra],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )
        assert done.returncode == 3, done.stderr  # the one bad row
        return done.stderr

    score(tmp_path / "plain.csv")
    score(tmp_path / "all.csv", "--explain", "100", "--chunk-rows", "64")  # 100 > the 20 columns: all of them
    score(tmp_path / "top.parquet", "--explain", "3", "--keep-input")
    plain, every = _read(tmp_path / "plain.csv"), _read(tmp_path / "all.csv")
    columns = (len(every[0]) - len(SCORES) - 1) // 3
    assert columns == len(rows[0]) - 1  # every input column but the label Churn
    assert list(every[0]) == SCORES + reason_names(columns)
    assert len(every) == len(rows) - 1
    assert [{k: r[k] for k in SCORES} for r in every] == plain  # bit for bit: the same shortest round-trip text
    for name in ("all.csv", "top.parquet"):
        assert _read(tmp_path / f"{name}.rejects.csv") == _read(tmp_path / "plain.csv.rejects.csv")
    assert [r["row"] for r in _read(tmp_path / "plain.csv.rejects.csv")] == [str(BAD + 1)]

    sent = {r["customerID"]: r for r in rows}
    blank_reasons = 0
    for row in every:
        reasons = [
            (row[f"reason_{i}_feature"], row[f"reason_{i}_value"], float(row[f"reason_{i}_contribution"]))
            for i in range(1, columns + 1)
        ]
        assert {f for f, _, _ in reasons} == set(rows[0]) - {"Churn"}
        assert all(value == sent[row["customerID"]][feature] for feature, value, _ in reasons)
        blank_reasons += sum(1 for f, v, _ in reasons if f == "TotalCharges" and v == " ")
        p = float(row["probability_1"])
        total = float(row["base_value"]) + math.fsum(c for _, _, c in reasons)
        assert total == pytest.approx(math.log(p / (1 - p)), abs=1e-9)
    assert blank_reasons == len(BLANKS)  # the blank cell, imputed, is explained and written as it was sent

    # Parquet: the same probabilities (doubles), the input carried, the three strongest of the full explanation.
    table = pq.read_table(tmp_path / "top.parquet")
    assert table.column_names == list(rows[0]) + SCORES[1:] + reason_names(3)
    top = table.to_pylist()
    assert [r["probability_1"] for r in top] == [float(r["probability_1"]) for r in plain]
    for row, full in zip(top, every, strict=True):
        assert row["base_value"] == float(full["base_value"])
        for i in range(1, 4):
            assert row[f"reason_{i}_feature"] == full[f"reason_{i}_feature"]
            assert row[f"reason_{i}_value"] == full[f"reason_{i}_value"]
            assert row[f"reason_{i}_contribution"] == float(full[f"reason_{i}_contribution"])
