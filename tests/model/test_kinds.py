"""Bundles of many kinds, trained here with the project's own library versions, served exactly as in-process."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from tests.support.live_server import live_server
from training.data import synthetic

VERSION = "20240101_120000"
NUMERIC = ["tenure", "MonthlyCharges", "TotalCharges"]
CATEGORICAL = ["Contract", "InternetService", "SeniorCitizen", "PaymentMethod"]
FEATURES = NUMERIC + CATEGORICAL


def _frame() -> pd.DataFrame:
    frame = synthetic(600, seed=7)
    frame["Plan"] = np.where(frame["tenure"] > 40, "long", np.where(frame["tenure"] > 12, "mid", "short"))
    return frame


def _onehot_pre() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )


def _ordinal_pre() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="mean"), MinMaxScaler()), NUMERIC),
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), CATEGORICAL),
        ]
    )


def _pipeline_alone(frame: pd.DataFrame) -> tuple[Any, Any]:
    model = Pipeline([("pre", _onehot_pre()), ("clf", LogisticRegression(max_iter=500))])
    return None, model.fit(frame[FEATURES], frame["Churn"].map({0: "No", 1: "Yes"}))


def _forest_multiclass(frame: pd.DataFrame) -> tuple[Any, Any]:
    pre = _ordinal_pre().fit(frame[FEATURES])
    return pre, RandomForestClassifier(n_estimators=20, random_state=0).fit(
        pre.transform(frame[FEATURES]), frame["Plan"]
    )


def _lgbm_regressor(frame: pd.DataFrame) -> tuple[Any, Any]:
    pre = _onehot_pre().fit(frame[FEATURES])
    model = lgb.LGBMRegressor(n_estimators=30, verbose=-1).fit(pre.transform(frame[FEATURES]), frame["MonthlyCharges"])
    return pre, model


def _booster_multiclass(frame: pd.DataFrame) -> tuple[Any, Any]:
    pre = _ordinal_pre().fit(frame[FEATURES])
    labels = frame["Plan"].map({"short": 0, "mid": 1, "long": 2})
    data = lgb.Dataset(pre.transform(frame[FEATURES]), labels)
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, data, num_boost_round=15)
    return pre, booster


def _booster_regression_alone(frame: pd.DataFrame) -> tuple[Any, Any]:
    data = lgb.Dataset(frame[NUMERIC].astype(float), frame["Churn"])
    return None, lgb.train({"objective": "regression", "verbose": -1}, data, num_boost_round=10)


def _gbr_on_frame(frame: pd.DataFrame) -> tuple[Any, Any]:
    numeric = frame[["tenure", "MonthlyCharges"]]
    return None, GradientBoostingRegressor(n_estimators=20, random_state=0).fit(numeric, frame["Churn"])


def _xgb_classifier(frame: pd.DataFrame) -> tuple[Any, Any]:
    xgb = pytest.importorskip("xgboost")
    pre = _onehot_pre().fit(frame[FEATURES])
    return pre, xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(pre.transform(frame[FEATURES]), frame["Churn"])


def _offline(pre: Any, model: Any, frame: pd.DataFrame, columns: list[str]) -> tuple[list[Any], np.ndarray | None]:
    """What a data scientist gets in a notebook from the same objects."""
    if isinstance(model, lgb.Booster):
        matrix = pre.transform(frame[columns]) if pre is not None else frame[columns].to_numpy(dtype=float)
        raw = model.predict(matrix)
        return (raw.argmax(axis=1).tolist(), raw) if raw.ndim == 2 else (raw.tolist(), None)
    features = pre.transform(frame[columns]) if pre is not None else frame[columns]
    proba = model.predict_proba(features) if hasattr(model, "predict_proba") else None
    return np.asarray(model.predict(features), dtype=object).tolist(), proba


KINDS = [
    pytest.param(_pipeline_alone, FEATURES, joblib.dump, id="full-pipeline-logreg-string-labels"),
    pytest.param(_forest_multiclass, FEATURES, joblib.dump, id="ordinal-forest-multiclass"),
    pytest.param(_lgbm_regressor, FEATURES, joblib.dump, id="lgbm-regressor"),
    pytest.param(
        _booster_multiclass, FEATURES, lambda o, p: Path(p).write_bytes(pickle.dumps(o)), id="raw-booster-multiclass"
    ),
    pytest.param(_booster_regression_alone, NUMERIC, joblib.dump, id="raw-booster-regression-no-preprocessor"),
    pytest.param(_gbr_on_frame, ["tenure", "MonthlyCharges"], joblib.dump, id="gbr-on-dataframe-no-preprocessor"),
    pytest.param(_xgb_classifier, FEATURES, joblib.dump, id="xgboost-classifier"),
]


def _json_rows(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    rows = []
    for record in frame[columns].to_dict(orient="records"):
        rows.append(
            {
                k: (None if isinstance(v, float) and np.isnan(v) else (v.item() if hasattr(v, "item") else v))
                for k, v in record.items()
            }
        )
    return rows


@pytest.mark.parametrize(("build", "columns", "dump"), KINDS)
def test_served_equals_in_process(
    build: Callable[[pd.DataFrame], tuple[Any, Any]],
    columns: list[str],
    dump: Callable[[Any, Path], Any],
    tmp_path: Path,
) -> None:
    frame = _frame()
    pre, model = build(frame)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    if pre is not None:
        joblib.dump(pre, bundle / f"preprocessor_{VERSION}.pkl")
    dump(model, bundle / f"model_{VERSION}.pkl")
    (bundle / "README.md").write_text("not an artifact")
    probe = frame.iloc[:120]
    expected, expected_proba = _offline(pre, model, probe, columns)
    with live_server(bundle, tmp_path) as server:
        response = server.client.post("/predict", json={"instances": _json_rows(probe, columns)})
        assert response.status_code == 200, response.text
        rows = response.json()["predictions"]
        single = server.client.post("/predict", json=_json_rows(probe.iloc[:1], columns)[0]).json()
    assert [r["prediction"] for r in rows] == [e.item() if hasattr(e, "item") else e for e in expected]
    if expected_proba is not None:
        served = np.array([list(r["probabilities"].values()) for r in rows])
        assert np.array_equal(served, expected_proba)
        # A one-row call is compared with a one-row call: BLAS may round a batch differently.
        _, single_proba = _offline(pre, model, probe.iloc[:1], columns)
        assert single_proba is not None
        assert list(single["probabilities"].values()) == single_proba[0].tolist()
    else:
        assert "probabilities" not in rows[0]
