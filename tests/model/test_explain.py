"""Reason codes through the loaded bundle: additive to the raw score, folded onto the right original columns."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from api.errors import ExplanationUnavailableError, InvalidExplainError, render_error
from api.model.attribution import ColumnLayout
from api.model.explain import contributions, explain_records, requested_reasons
from api.model.loaded import LoadedModel
from api.model.loader import load_bundle
from tests.model.test_kinds import (
    FEATURES,
    NUMERIC,
    VERSION,
    _booster_multiclass,
    _booster_regression_alone,
    _forest_multiclass,
    _frame,
    _gbr_on_frame,
    _json_rows,
    _lgbm_regressor,
    _onehot_pre,
    _pipeline_alone,
    _xgb_classifier,
)
from tests.support.live_server import ROOT

Build = Callable[[pd.DataFrame], tuple[Any, Any]]


def _gb_binary(frame: pd.DataFrame) -> tuple[Any, Any]:
    pre = _onehot_pre().fit(frame[FEATURES])
    return pre, GradientBoostingClassifier(n_estimators=15, random_state=0).fit(
        pre.transform(frame[FEATURES]), frame["Churn"]
    )


def _extra_trees_regressor(frame: pd.DataFrame) -> tuple[Any, Any]:
    pre = _onehot_pre().fit(frame[FEATURES])
    return pre, ExtraTreesRegressor(n_estimators=10, random_state=0).fit(
        pre.transform(frame[FEATURES]), frame["MonthlyCharges"]
    )


def _xgb_missing_zero(frame: pd.DataFrame) -> tuple[Any, Any]:
    """missing=0: the one-hot zeros are "missing" to this model, and must be to its attribution too."""
    xgb = pytest.importorskip("xgboost", reason="xgboost is not installed in this stack")
    pre = _onehot_pre().fit(frame[FEATURES])
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3, missing=0.0)
    return pre, model.fit(pre.transform(frame[FEATURES]), frame["Churn"])


def _bundle(build: Build, frame: pd.DataFrame, directory: Path) -> tuple[Any, Any, Path]:
    pre, model = build(frame)
    directory.mkdir()
    if pre is not None:
        joblib.dump(pre, directory / f"preprocessor_{VERSION}.pkl")
    (directory / f"model_{VERSION}.pkl").write_bytes(pickle.dumps(model, protocol=5))
    return pre, model, directory


def _raw_scores(pre: Any, model: Any, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """What the model computes before its link, in a notebook, from the same objects: (rows, outputs)."""
    if isinstance(model, lgb.Booster):
        matrix = pre.transform(frame[columns]) if pre is not None else frame[columns].to_numpy(dtype=float)
        return np.asarray(model.predict(matrix, raw_score=True)).reshape(len(frame), -1)
    features = pre.transform(frame[columns]) if pre is not None else frame[columns]
    if type(model).__module__.startswith("lightgbm"):
        return np.asarray(model.predict(features, raw_score=True)).reshape(len(frame), -1)
    if type(model).__module__.startswith("xgboost"):
        return np.asarray(model.predict(features, output_margin=True), dtype=np.float64).reshape(len(frame), -1)
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(features)).reshape(len(frame), -1)
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(features))  # a forest's raw score is its probability
    return np.asarray(model.predict(features)).reshape(len(frame), -1)


KINDS = [
    pytest.param(_booster_multiclass, FEATURES, 1e-9, id="raw-booster-multiclass"),
    pytest.param(_booster_regression_alone, NUMERIC, 1e-9, id="raw-booster-regression-no-preprocessor"),
    pytest.param(_lgbm_regressor, FEATURES, 1e-9, id="lgbm-regressor-onehot"),
    pytest.param(_forest_multiclass, FEATURES, 1e-9, id="random-forest-multiclass-ordinal"),
    pytest.param(_extra_trees_regressor, FEATURES, 1e-9, id="extra-trees-regressor"),
    pytest.param(_gb_binary, FEATURES, 1e-9, id="gradient-boosting-binary-logit"),
    pytest.param(_gbr_on_frame, ["tenure", "MonthlyCharges"], 1e-9, id="gradient-boosting-regressor-on-frame"),
    # XGBoost sums its contributions in float32.
    pytest.param(_xgb_classifier, FEATURES, 1e-5, id="xgboost-classifier"),
    pytest.param(_xgb_missing_zero, FEATURES, 1e-5, id="xgboost-missing-zero"),
]


@pytest.mark.parametrize(("build", "columns", "tolerance"), KINDS)
def test_base_plus_contributions_is_the_raw_score(
    build: Build, columns: list[str], tolerance: float, tmp_path: Path
) -> None:
    frame = _frame()
    pre, model, bundle = _bundle(build, frame, tmp_path / "bundle")
    loaded = load_bundle(bundle)
    probe = frame.iloc[:80]
    explained = contributions(loaded, _json_rows(probe, columns))
    assert explained.columns == tuple(loaded.schema.frame_order)
    raw = _raw_scores(pre, model, probe, columns)
    expected = raw[np.arange(len(probe)), explained.outputs]
    np.testing.assert_allclose(explained.base + explained.contributions.sum(axis=1), expected, rtol=0, atol=tolerance)
    if raw.shape[1] > 1:  # multiclass: each row explains the class the model predicts
        assert explained.outputs.tolist() == raw.argmax(axis=1).tolist()


def test_contributions_land_on_the_only_column_that_matters(tmp_path: Path) -> None:
    """Only Contract decides the label: every contribution is Contract's, summed over its one-hot columns."""
    frame = _frame()
    label = (frame["Contract"] == "Month-to-month").astype(int)
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
    )
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("cat", categorical, ["Contract", "InternetService", "PaymentMethod"]),
    ], remainder="passthrough").fit(frame[FEATURES])
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(pre.transform(frame[FEATURES]), label), num_boost_round=10,
    )
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    joblib.dump(pre, bundle / f"preprocessor_{VERSION}.pkl")
    (bundle / f"model_{VERSION}.pkl").write_bytes(pickle.dumps(booster))
    loaded = load_bundle(bundle)
    records = _json_rows(frame.iloc[:50], FEATURES)
    explained = contributions(loaded, records)
    contract = explained.columns.index("Contract")
    assert np.all(np.abs(explained.contributions[:, contract]) > 0.1)
    # LightGBM may still split on noise once Contract is used up: gains of ~1e-17, not reasons.
    others = np.delete(explained.contributions, contract, axis=1)
    assert np.abs(others).max() < 1e-12
    top = explain_records(loaded, records, 3)
    assert all(row.reasons[0].feature == "Contract" for row in top)
    assert [row.reasons[0].value for row in top] == [r["Contract"] for r in records]
    # SeniorCitizen went through the remainder (passthrough): it is still named, with a zero share.
    assert "SeniorCitizen" in explained.columns


def test_encoded_features_fold_onto_their_source_columns(tmp_path: Path) -> None:
    frame = _frame()
    pre, _, bundle = _bundle(_lgbm_regressor, frame, tmp_path / "bundle")
    loaded = load_bundle(bundle)
    layout = loaded.layout
    assert isinstance(layout, ColumnLayout)
    names = pre.get_feature_names_out()
    assert layout.width == len(names)
    for name, source in zip(names, layout.sources.tolist(), strict=True):
        # sklearn names an encoded feature "<transformer>__<column>[_<category>]".
        assert name.split("__", 1)[1].startswith(layout.columns[source]), (name, layout.columns[source])


def _loaded(build: Build, tmp_path: Path) -> LoadedModel:
    return load_bundle(_bundle(build, _frame(), tmp_path / "bundle")[2])


def test_reasons_are_the_largest_in_absolute_value_and_clamped_to_the_columns(tmp_path: Path) -> None:
    loaded = _loaded(_lgbm_regressor, tmp_path)
    records = _json_rows(_frame().iloc[:20], FEATURES)
    every = contributions(loaded, records).contributions
    for row, explained in enumerate(explain_records(loaded, records, 100)):
        assert len(explained.reasons) == len(FEATURES)  # asked for more than there are: all of them
        shares = [abs(r.contribution) for r in explained.reasons]
        assert shares == sorted(shares, reverse=True)
        assert sum(r.contribution for r in explained.reasons) == pytest.approx(every[row].sum(), abs=1e-12)
    assert [len(e.reasons) for e in explain_records(loaded, records, 2)] == [2] * 20


def test_a_model_without_an_exact_method_refuses_with_400(tmp_path: Path) -> None:
    loaded = _loaded(_pipeline_alone, tmp_path)
    assert loaded.describe()["explanations"].startswith("unavailable: ")
    with pytest.raises(ExplanationUnavailableError) as refused:
        explain_records(loaded, _json_rows(_frame().iloc[:2], FEATURES), 3)
    assert "LogisticRegression" in refused.value.message
    assert render_error(refused.value).status == 400


def test_histogram_gradient_boosting_refuses(tmp_path: Path) -> None:
    def build(frame: pd.DataFrame) -> tuple[Any, Any]:
        pre = _onehot_pre().fit(frame[FEATURES])
        features = pre.transform(frame[FEATURES])
        dense = features.toarray() if hasattr(features, "toarray") else features
        return pre, HistGradientBoostingClassifier(max_iter=5).fit(dense, frame["Churn"])

    with pytest.raises(ExplanationUnavailableError, match="HistGradientBoostingClassifier"):
        contributions(_loaded(build, tmp_path), _json_rows(_frame().iloc[:2], FEATURES))


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        pytest.param("3", 3, id="query-text"),
        pytest.param("9" * 5000, 10**9, id="huge-means-all-columns"),
        pytest.param("²", None, id="superscript-digit"),
        pytest.param("٣", None, id="arabic-indic-digit"),
        pytest.param(5, 5, id="json-int"),
        pytest.param("0", None, id="zero"),
        pytest.param("-1", None, id="negative"),
        pytest.param("2.5", None, id="fraction"),
        pytest.param("three", None, id="word"),
        pytest.param("", None, id="empty"),
        pytest.param(True, None, id="json-bool"),
        pytest.param(2.0, None, id="json-float"),
    ],
)
def test_requested_reasons(sent: object, expected: int | None) -> None:
    if expected is not None:
        assert requested_reasons(sent) == expected
        return
    with pytest.raises(InvalidExplainError) as refused:
        requested_reasons(sent)
    assert render_error(refused.value).status == 422
    assert refused.value.details[0]["field"] == "explain"


_CONCURRENT_EXPLAINS = """
import sys
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np

from api.model.kinds.lightgbm import LightGBMKind

booster = joblib.load(sys.argv[1])
explain = LightGBMKind().bind(booster, None).explain
rows = np.random.default_rng(0).normal(size=(64, booster.num_feature()))
single = [explain(rows[i : i + 1]) for i in range(64)]
with ThreadPoolExecutor(8) as pool:
    for i, found in enumerate(pool.map(lambda i: explain(rows[i % 64 : i % 64 + 1]), range(2000))):
        assert np.array_equal(found.values, single[i % 64].values), i
print("consistent")
"""


@pytest.mark.real_bundle
def test_concurrent_explains_of_one_booster_neither_crash_nor_mix(real_bundle: Path, tmp_path: Path) -> None:
    """Explained requests run on a thread pool: with the LightGBM 3.3.5 the real model was saved with,
    unserialised pred_contrib calls corrupt the heap and abort the process (a child process here)."""
    script = tmp_path / "concurrent_explains.py"
    script.write_text(_CONCURRENT_EXPLAINS)
    done = subprocess.run(
        [sys.executable, str(script), str(real_bundle / "model_20250717_214252.pkl")],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "consistent", (done.returncode, done.stderr[-2000:])
