"""``--explain N`` on the default bundle, through the real command line: reasons beside unchanged scores.

The reasons must add up: base_value + every column's contribution = the logit of probability_1
(the default bundle is a binary LightGBM model), and asking for them must not move a probability.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from api.config import Settings
from api.model.loaded import LoadedModel
from api.score import EXIT_CANNOT_START, EXIT_REJECTED, main
from api.scoring.model import load_for_scoring
from api.scoring.reasons import EXPLAIN_CHUNK_ROWS, SLICE_ROWS, reason_names
from tests.model.test_explain import _bundle
from tests.model.test_kinds import FEATURES, _booster_multiclass, _frame, _pipeline_alone
from tests.scoring.test_job import _read_csv, _rows, _write_csv

pytest.importorskip("pyarrow", reason="the scoring dependencies (requirements-scoring.txt) are not installed")

SCORES = ["customerID", "prediction", "probability_0", "probability_1", "model_version"]


@pytest.fixture(scope="module")
def model(default_bundle: Path) -> LoadedModel:
    return load_for_scoring(Settings(model_dir=default_bundle))


def _score(bundle: Path, source: Path, out: Path, *extra: str) -> int:
    args = [str(source), str(out), "--model-dir", str(bundle), "--id", "customerID", "--progress", "never"]
    return main([*args, *extra])


def _reasons(row: dict[str, Any], count: int) -> list[tuple[str, Any, float]]:
    return [
        (row[f"reason_{i}_feature"], row[f"reason_{i}_value"], float(row[f"reason_{i}_contribution"]))
        for i in range(1, count + 1)
    ]


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_reasons_add_up_to_the_raw_score_beside_identical_probabilities(
    model: LoadedModel, default_bundle: Path, tmp_path: Path
) -> None:
    rows = _rows(model, 90)
    rows[4]["TotalCharges"] = " "  # blank: missing, imputed; its reason value is the cell as written
    rows[8]["tenure"] = "twelve"  # rejected, with or without --explain
    source = _write_csv(tmp_path / "in.csv", rows)
    assert _score(default_bundle, source, tmp_path / "plain.csv") == EXIT_REJECTED
    # 1000 reasons: clamped to the model's columns, i.e. every column; chunks of 7 cross chunk borders.
    code = _score(default_bundle, source, tmp_path / "all.csv", "--explain", "1000", "--chunk-rows", "7")
    assert code == EXIT_REJECTED
    plain, every = _read_csv(tmp_path / "plain.csv"), _read_csv(tmp_path / "all.csv")
    columns = len(model.schema.columns)
    assert list(every[0]) == SCORES + reason_names(columns)
    assert [{k: r[k] for k in SCORES} for r in every] == plain  # the same text, so the same doubles
    assert _read_csv(tmp_path / "all.csv.rejects.csv") == _read_csv(tmp_path / "plain.csv.rejects.csv")
    assert [r["row"] for r in _read_csv(tmp_path / "all.csv.rejects.csv")] == ["9"]
    sent = {r["customerID"]: r for r in rows}
    for row in every:
        reasons = _reasons(row, columns)
        assert sorted(f for f, _, _ in reasons) == sorted(spec.name for spec in model.schema.columns)
        assert all(value == sent[row["customerID"]][feature] for feature, value, _ in reasons)  # as in the file
        shares = [abs(c) for _, _, c in reasons]
        assert shares == sorted(shares, reverse=True)
        total = float(row["base_value"]) + math.fsum(c for _, _, c in reasons)
        assert total == pytest.approx(_logit(float(row["probability_1"])), abs=1e-9)
    assert any(f == "TotalCharges" and v == " " for f, v, _ in _reasons(every[4], columns))


def test_a_chunk_larger_than_an_explained_slice_gets_the_same_reasons(
    model: LoadedModel, default_bundle: Path, tmp_path: Path
) -> None:
    rows = _rows(model, 2 * SLICE_ROWS + 100)
    source = _write_csv(tmp_path / "in.csv", rows)
    # One chunk explained in three slices, against the default: chunks of EXPLAIN_CHUNK_ROWS, one slice each.
    assert _score(default_bundle, source, tmp_path / "one.csv", "--explain", "2", "--chunk-rows", "100000") == 0
    assert _score(default_bundle, source, tmp_path / "many.csv", "--explain", "2") == 0
    assert EXPLAIN_CHUNK_ROWS < SLICE_ROWS < len(rows)
    one, many = _read_csv(tmp_path / "one.csv"), _read_csv(tmp_path / "many.csv")
    assert len(one) == len(rows) and one == many
    assert [r["customerID"] for r in one] == [r["customerID"] for r in rows]


def test_parquet_holds_the_csv_reasons_typed(model: LoadedModel, default_bundle: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(model, 40)
    source = _write_csv(tmp_path / "in.csv", rows)
    assert _score(default_bundle, source, tmp_path / "top.csv", "--explain", "3") == 0
    assert _score(default_bundle, source, tmp_path / "top.parquet", "--explain", "3", "--keep-input") == 0
    table = pq.read_table(tmp_path / "top.parquet")
    names = reason_names(3)
    assert table.column_names == list(rows[0]) + SCORES[1:] + names  # after every existing column
    types = {name: str(table.schema.field(name).type) for name in names}
    assert types == {n: "double" if n == "base_value" or n.endswith("_contribution") else "string" for n in names}
    parquet = table.select(["customerID", *SCORES[1:], *names]).to_pylist()
    csv_rows = _read_csv(tmp_path / "top.csv")
    assert [r["probability_1"] for r in parquet] == [float(r["probability_1"]) for r in csv_rows]
    assert [_reasons(r, 3) for r in parquet] == [_reasons(r, 3) for r in csv_rows]
    assert [r["base_value"] for r in parquet] == [float(r["base_value"]) for r in csv_rows]

    # Typed Parquet input: the value is the cell as JSON spells it (an integer 50, a float 58.36), null if missing.
    typed = pa.table({
        **{name: [r[name] for r in rows] for name in rows[0]},
        "tenure": pa.array([int(r["tenure"]) for r in rows], pa.int64()),
        "TotalCharges": pa.array([None] + [float(r["TotalCharges"]) for r in rows[1:]], pa.float64()),
    })
    pq.write_table(typed, tmp_path / "typed.parquet")
    assert _score(default_bundle, tmp_path / "typed.parquet", tmp_path / "typed-out.parquet", "--explain", "99") == 0
    every = pq.read_table(tmp_path / "typed-out.parquet").to_pylist()
    for row, sent in zip(every, typed.to_pylist(), strict=True):
        values = {feature: value for feature, value, _ in _reasons(row, len(model.schema.columns))}
        assert values["tenure"] == str(sent["tenure"])
        assert values["TotalCharges"] == (None if sent["TotalCharges"] is None else repr(sent["TotalCharges"]))
        assert values["Contract"] == sent["Contract"]


def test_a_multiclass_models_reasons_explain_the_predicted_class(tmp_path: Path) -> None:
    frame = _frame().head(60)
    pre, booster, bundle = _bundle(_booster_multiclass, _frame(), tmp_path / "bundle")  # a raw 3-class Booster
    source = tmp_path / "in.csv"
    assert frame["TotalCharges"].isna().sum() == 1
    frame[FEATURES].to_csv(source, index=False)  # a blank TotalCharges: imputed by the preprocessor
    out = tmp_path / "out.csv"
    assert main([str(source), str(out), "--model-dir", str(bundle), "--progress", "never", "--explain", "50"]) == 0
    scored = _read_csv(out)
    raw = booster.predict(pre.transform(frame[FEATURES]), raw_score=True)  # (rows, classes), the user's own way
    assert len(scored) == len(frame) and len({r["prediction"] for r in scored}) > 1
    for row, scores in zip(scored, raw, strict=True):
        reasons = _reasons(row, len(FEATURES))
        total = float(row["base_value"]) + math.fsum(c for _, _, c in reasons)
        assert total == pytest.approx(scores[int(row["prediction"])], abs=1e-9)


@pytest.mark.parametrize("engine", ["local", "spark"])
def test_a_model_that_cannot_explain_is_refused_before_any_row(
    tmp_path: Path, engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if engine == "spark":
        pytest.importorskip("pyspark", reason="requirements-spark.txt is not installed")
    bundle = _bundle(_pipeline_alone, _frame(), tmp_path / "bundle")[2]  # a LogisticRegression pipeline
    source = tmp_path / "in.csv"
    _frame()[FEATURES].head(30).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    args = [str(source), str(out), "--model-dir", str(bundle), "--progress", "never", "--engine", engine]
    started = time.perf_counter()
    assert main([*args, "--explain", "2"]) == EXIT_CANNOT_START
    assert time.perf_counter() - started < 10  # Spark: refused before a session (and its JVM) starts
    err = capsys.readouterr().err
    assert "--explain is not possible with this model" in err and "LogisticRegression" in err
    assert not out.exists() and not (tmp_path / "out.csv.rejects.csv").exists()  # nothing was scored
    if engine == "local":
        assert main(args) in (0, EXIT_REJECTED)  # the same model scores the file without --explain
        assert len(_read_csv(out)) > 0


@pytest.mark.parametrize("sent", ["0", "-2", "1.5", "three", ""], ids=["zero", "negative", "fraction", "word", "empty"])
def test_explain_must_be_a_whole_number_of_at_least_one(
    default_bundle: Path, tmp_path: Path, sent: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main([str(tmp_path / "in.csv"),
              str(tmp_path / "out.csv"), "--model-dir", str(default_bundle), "--explain", sent])
    assert refused.value.code == 2
    assert "argument --explain: must be a whole number >= 1" in capsys.readouterr().err


def test_an_input_column_named_like_a_reason_column_is_refused_with_keep_input(
    model: LoadedModel, default_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{**r, "reason_1_value": "x"} for r in _rows(model, 3)]
    source = _write_csv(tmp_path / "in.csv", rows)
    assert _score(default_bundle, source, tmp_path / "out.csv", "--explain", "1", "--keep-input") == EXIT_CANNOT_START
    assert "input column 'reason_1_value' has the name of an output column" in capsys.readouterr().err
    assert _score(default_bundle, source, tmp_path / "out.csv", "--explain", "1") == 0  # not carried: no clash
