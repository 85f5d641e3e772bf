"""The in-process scorer on the committed default bundle: answers equal the API's path, bad rows go aside."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest

from api.config import Settings
from api.model.inference import answer_records
from api.model.loaded import LoadedModel
from api.score import EXIT_CANNOT_START, EXIT_REJECTED, main
from api.scoring.job import score_file
from api.scoring.model import load_for_scoring

pytest.importorskip("pyarrow", reason="the scoring dependencies (requirements-scoring.txt) are not installed")


@pytest.fixture(scope="module")
def model(default_bundle: Path) -> LoadedModel:
    return load_for_scoring(Settings(model_dir=default_bundle, id_field="customerID"))


def _rows(model: LoadedModel, count: int) -> list[dict[str, str]]:
    """CSV rows as text: the bundle's example, varied per row."""
    rows = []
    for i in range(count):
        row = {k: str(v) for k, v in model.example.items()}
        row["customerID"] = f"C{i:05d}"
        row["tenure"] = str(i % 72)
        row["MonthlyCharges"] = f"{20 + (i * 7.31) % 90:.2f}"
        row["TotalCharges"] = f"{(i * 13.7) % 8000:.2f}"
        row["Contract"] = ("Month-to-month", "One year", "Two year")[i % 3]
        row["Churn"] = "Yes" if i % 4 == 0 else "No"
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _api_answer(model: LoadedModel, rows: list[dict[str, str]]) -> list[float]:
    """P(1) per row as POST /predict computes it for the JSON a client sends (numbers, blank → null)."""
    records: list[dict[str, Any]] = []
    for row in rows:
        record: dict[str, Any] = {k: v for k, v in row.items() if k != "Churn"}
        for name in ("tenure", "MonthlyCharges", "TotalCharges"):
            record[name] = float(row[name]) if row[name].strip() else None
        record["SeniorCitizen"] = int(row["SeniorCitizen"])
        records.append(record)
    answer = answer_records(model, records)
    assert answer.output.probabilities is not None
    return answer.output.probabilities[:, 1].tolist()


def test_scores_equal_the_api_path_whatever_the_chunk_size(model: LoadedModel, tmp_path: Path) -> None:
    rows = _rows(model, 120)
    rows[5]["TotalCharges"] = " "  # the real file's blank: missing, imputed as by the API's null
    rows[6]["TotalCharges"] = ""
    source = _write_csv(tmp_path / "in.csv", rows)
    expected = _api_answer(model, rows)
    for chunk_rows in (7, 1000):
        out = tmp_path / f"out-{chunk_rows}.csv"
        summary = score_file(model, source, out, chunk_rows=chunk_rows, progress=False)
        scored = _read_csv(out)
        assert (summary.rows, summary.scored, summary.rejected_rows) == (120, 120, 0)
        assert list(scored[0]) == ["customerID", "prediction", "probability_0", "probability_1", "model_version"]
        assert [float(r["probability_1"]) for r in scored] == expected  # bit for bit through the CSV
        assert [r["customerID"] for r in scored] == [r["customerID"] for r in rows]
        assert {r["model_version"] for r in scored} == {model.version}
        assert _read_csv(tmp_path / f"out-{chunk_rows}.csv.rejects.csv") == []


def test_bad_rows_go_to_the_rejects_file_and_the_job_goes_on(default_bundle: Path, tmp_path: Path) -> None:
    model = load_for_scoring(Settings(model_dir=default_bundle))
    rows = _rows(model, 300)
    bad = {3: ("tenure", "twelve"), 4: ("SeniorCitizen", "maybe"), 250: ("MonthlyCharges", "inf")}
    bad |= {row: ("TotalCharges", "n/a") for row in range(100, 170)}  # more than one validation pass lists
    for row, (name, value) in bad.items():
        rows[row][name] = value
    source = _write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    args = [str(source), str(out), "--model-dir", str(default_bundle), "--id", "customerID", "--progress", "never"]
    code = main(args)
    assert code == EXIT_REJECTED
    rejects = _read_csv(tmp_path / "out.csv.rejects.csv")
    assert [(int(r["row"]), r["field"]) for r in rejects] == [(row + 1, bad[row][0]) for row in sorted(bad)]
    assert all(r["reason"] for r in rejects)
    assert "number" in rejects[0]["reason"]
    good = [r for i, r in enumerate(rows) if i not in bad]
    scored = _read_csv(out)
    assert [r["customerID"] for r in scored] == [r["customerID"] for r in good]
    assert [float(r["probability_1"]) for r in scored] == _api_answer(model, good)


def test_parquet_in_and_out_with_the_input_carried(model: LoadedModel, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(model, 50)
    expected = _api_answer(model, rows)
    table = pa.table({name: [r[name] for r in rows] for name in rows[0]})
    table = table.set_column(
        table.schema.get_field_index("TotalCharges"),
        "TotalCharges",
        pa.array([None if i == 2 else float(r["TotalCharges"]) for i, r in enumerate(rows)]),
    )
    expected[2] = _api_answer(model, [{**rows[2], "TotalCharges": ""}])[0]
    pq.write_table(table, tmp_path / "in.parquet")
    summary = score_file(model, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=16, keep_input=True)
    result = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert summary.scored == 50
    assert list(result)[: len(rows[0])] == list(rows[0])  # every input column first, Churn included
    assert result["Churn"] == [r["Churn"] for r in rows]
    assert result["probability_1"] == expected
    assert all(math.isclose(a + b, 1.0) for a, b in zip(result["probability_0"], result["probability_1"], strict=True))


@pytest.mark.parametrize(
    ("header_drop", "message"),
    [
        pytest.param("tenure", "no column 'tenure'", id="model-column-missing"),
        pytest.param("customerID", "the id column is 'customerID'", id="id-column-missing"),
    ],
)
def test_a_file_without_a_needed_column_is_refused_before_scoring(
    default_bundle: Path, tmp_path: Path, header_drop: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = load_for_scoring(Settings(model_dir=default_bundle))
    rows = [{k: v for k, v in r.items() if k != header_drop} for r in _rows(model, 3)]
    source = _write_csv(tmp_path / "in.csv", rows)
    code = main([str(source), str(tmp_path / "out.csv"), "--model-dir", str(default_bundle), "--id", "customerID"])
    assert code == EXIT_CANNOT_START
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()
