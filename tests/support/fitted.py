"""Fixtures for the artifact-safety tests: the real artifacts copied aside, fitted models, payload helpers."""

from __future__ import annotations

import io
import pickle
import shutil
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

SHARED = Path(__file__).parents[2] / ".." / "shared"
REAL_MODEL = SHARED / "real-model"
REAL_CSV = SHARED / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
REAL_NAMES = ("preprocessor_20250717_214053.pkl", "model_20250717_214053.pkl", "model_20250717_214252.pkl")

Fitted = tuple[Any, Any]  # (model, the input it predicts on)


@pytest.fixture(scope="session")
def real_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the first user's real artifacts (the originals are read-only input)."""
    if not all((REAL_MODEL / name).is_file() for name in REAL_NAMES):
        pytest.skip(f"the real artifacts are not here ({SHARED.resolve()} is absent, as on a user's machine)")
    target = tmp_path_factory.mktemp("real-model")
    for name in REAL_NAMES:
        shutil.copy(REAL_MODEL / name, target / name)
    return target


@pytest.fixture(scope="session")
def real_csv() -> Path:
    """The real churn data the first user's rows come from."""
    if not REAL_CSV.is_file():
        pytest.skip(f"the real data is not here ({SHARED.resolve()} is absent)")
    return REAL_CSV


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    y3 = np.digitize(X[:, 1], [-0.5, 0.5])
    frame = pd.DataFrame({
        "tenure": rng.randint(0, 72, 300).astype(float),
        "charges": rng.normal(70, 20, 300),
        "contract": rng.choice(["monthly", "yearly", "two-year"], 300),
        "senior": rng.choice([0, 1], 300),
        "plan": rng.choice(["basic", "plus"], 300),
    })
    frame.loc[::11, "charges"] = np.nan
    frame.loc[::13, "contract"] = np.nan
    return X, y, y3, X[:, 0] * 2.0 + X[:, 2], frame


def _build(name: str) -> Fitted:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
    from sklearn.svm import SVC

    X, y, y3, yr, frame = _data()
    if name == "logistic_regression":
        return LogisticRegression().fit(X, y), X
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), X
    if name == "gradient_boosting":
        return GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, y), X
    if name == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=5).fit(X, y), X
    if name == "hist_gradient_boosting_regressor":
        return HistGradientBoostingRegressor(max_iter=5).fit(X, yr), X
    if name == "svc_probability":
        return SVC(probability=True, random_state=0).fit(X, y), X
    if name == "knn_kd_tree":
        return KNeighborsClassifier(algorithm="kd_tree").fit(X, y), X
    if name == "mlp_random_state":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: 5 iterations are plenty here
            return MLPClassifier(max_iter=5, random_state=0).fit(X, y), X
    if name in ("pipeline_column_transformer", "column_transformer_pandas_index"):
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        onehot = Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ])
        columns = frame.columns if name == "column_transformer_pandas_index" else list(frame.columns)
        pre = ColumnTransformer([
            ("numeric", numeric, columns[:2]),
            ("onehot", onehot, columns[2:4]),
            ("ordinal", OrdinalEncoder(), columns[4:]),
        ])
        if name == "column_transformer_pandas_index":
            return pre.fit(frame), frame  # keeps pandas Index objects in its state
        return Pipeline([("pre", pre), ("model", LogisticRegression())]).fit(frame, y), frame
    return _build_boosted(name, X, y, y3, yr)


def _build_boosted(name: str, X: np.ndarray, y: np.ndarray, y3: np.ndarray, yr: np.ndarray) -> Fitted:
    if name.startswith("xgb"):
        xgb = pytest.importorskip("xgboost", reason="xgboost is not installed in this stack")
        if name == "xgb_classifier":
            return xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y), X
        return xgb.XGBRegressor(n_estimators=5, max_depth=3).fit(X, yr), X
    import lightgbm as lgb

    quiet = {"verbose": -1, "num_threads": 1}
    if name == "lgbm_classifier":
        return lgb.LGBMClassifier(n_estimators=5, **quiet).fit(X, y), X
    if name == "lgbm_regressor":
        return lgb.LGBMRegressor(n_estimators=5, **quiet).fit(X, yr), X
    objectives = {
        "booster_binary": ({"objective": "binary"}, y),
        "booster_multiclass": ({"objective": "multiclass", "num_class": 3}, y3),
        "booster_regression": ({"objective": "regression"}, yr),
    }
    params, target = objectives[name]
    return lgb.train({**params, **quiet}, lgb.Dataset(X, target), num_boost_round=5), X


@pytest.fixture(scope="session")
def fitted_model() -> Callable[[str], Fitted]:
    """Fit a model kind once per session: `fitted_model("random_forest") -> (model, X)`."""
    return cache(_build)


def outputs(model: Any, X: Any) -> list[np.ndarray]:
    """Everything the model computes on X, as arrays (sparse outputs densified)."""
    results = []
    for method in ("predict", "predict_proba", "transform"):
        if hasattr(model, method):
            result = getattr(model, method)(X)
            results.append(np.asarray(result.toarray() if sp.issparse(result) else result))
    return results


@pytest.fixture(scope="session")
def model_outputs() -> Callable[[Any, Any], list[np.ndarray]]:
    return outputs


def nest_in_joblib(stream: bytes) -> bytes:
    """A real joblib file whose object-dtype array's nested pickle stream is `stream`."""
    placeholder = np.array(["__payload_placeholder__"], dtype=object)
    buffer = io.BytesIO()
    joblib.dump({"weights": np.arange(4.0), "objects": placeholder}, buffer)
    data, nested = buffer.getvalue(), pickle.dumps(placeholder, protocol=5)
    assert data.count(nested) == 1, "joblib's object-array layout changed"
    return data.replace(nested, stream)


@pytest.fixture(scope="session")
def joblib_nesting() -> Callable[[bytes], bytes]:
    return nest_in_joblib
