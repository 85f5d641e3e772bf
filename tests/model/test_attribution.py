"""The column layout of fitted preprocessors, checked by perturbation: change one input column, and only
the encoded features the layout traces to it may move."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from api.model.attribution import UnmappableLayout, column_layout


def _frame() -> pd.DataFrame:
    rng = np.random.RandomState(3)
    frame = pd.DataFrame({
        "tenure": rng.randint(0, 72, 400).astype(float),
        "charges": rng.normal(70, 20, 400),
        "empty": np.full(400, np.nan),
        "contract": rng.choice(["monthly", "yearly", "two-year", "rare"], 400, p=[0.5, 0.3, 0.19, 0.01]),
        "plan": rng.choice(["basic", "plus"], 400),
        "senior": rng.choice([0, 1], 400),
    })
    frame.loc[::9, "charges"] = np.nan
    frame.loc[::13, "contract"] = np.nan
    return frame


def _imputed_onehot(**onehot: Any) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(**onehot))


ALL = ["tenure", "charges", "empty", "contract", "plan", "senior"]
PREPROCESSORS: list[Any] = [
    pytest.param(
        lambda: ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["tenure", "charges"]),
            ("cat", _imputed_onehot(handle_unknown="ignore", drop="first"), ["contract", "plan", "senior"]),
        ]),
        ALL,
        id="real-bundle-shape-drop-first",
    ),
    pytest.param(
        lambda: ColumnTransformer([
            # The all-missing column is dropped by the median imputer; indicators come after the kept columns.
            ("num", SimpleImputer(strategy="median", add_indicator=True), ["tenure", "charges", "empty"]),
            ("cat", _imputed_onehot(handle_unknown="ignore"), ["contract", "plan"]),
        ], remainder="passthrough"),  # senior
        ALL,
        id="imputer-drops-empty-adds-indicators-remainder-passthrough",
    ),
    pytest.param(
        lambda: ColumnTransformer([
            ("cat", _imputed_onehot(handle_unknown="infrequent_if_exist", min_frequency=10), ["contract"]),
            ("bins", KBinsDiscretizer(n_bins=4, encode="onehot"), [0]),
            ("drop", "drop", ["charges"]),
            ("ord", OrdinalEncoder(), slice(4, 6)),
        ]),
        ALL,
        id="infrequent-categories-bins-by-index-slice-drop",
    ),
    pytest.param(
        lambda: ColumnTransformer([
            # tenure and empty (MinMaxScaler keeps NaN); charges and senior go to the remainder's scaler.
            ("scaled", MinMaxScaler(), np.array([True, False, False, False, False, True])),
            ("contract", _imputed_onehot(), ["contract"]),
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ], remainder=StandardScaler()),
        ["tenure", "charges", "senior", "contract", "plan", "empty"],
        id="bool-mask-remainder-estimator",
    ),
]


def _perturbed(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    changed = frame.copy()
    changed[column] = np.roll(frame[column].to_numpy(), 1)
    return changed


def _dense(matrix: Any) -> np.ndarray:
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float64)


@pytest.mark.parametrize(("build", "columns"), PREPROCESSORS)
def test_only_the_traced_features_move_when_one_column_changes(build: Callable[[], Any], columns: list[str]) -> None:
    frame = _frame()[columns]
    preprocessor = build()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Skipping features without any observed values": the point here
        preprocessor.fit(frame)
    base = _dense(preprocessor.transform(frame))
    layout = column_layout(preprocessor, columns, base.shape[1])
    moved_any = np.zeros(base.shape[1], dtype=bool)
    for index, column in enumerate(columns):
        after = _dense(preprocessor.transform(_perturbed(frame, column)))
        moved = np.any(~np.isclose(after, base, equal_nan=True), axis=0)
        moved_any |= moved
        assert set(layout.sources[moved].tolist()) <= {index}, column
    # A constant (or all-NaN) feature, such as an all-missing column's indicator, never moves.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        varying = np.nan_to_num(np.nanmax(base, axis=0) - np.nanmin(base, axis=0)) > 0
    assert moved_any[varying].all(), "every varying encoded feature moves with some input column"
    folded = layout.fold(np.ones((2, base.shape[1])))
    assert folded.sum() == 2 * base.shape[1]


def test_a_transformer_that_mixes_columns_is_refused() -> None:
    frame = _frame()[["tenure", "charges"]].fillna(0)
    preprocessor = ColumnTransformer([("pca", PCA(n_components=2), ["tenure", "charges"])]).fit(frame)
    with pytest.raises(UnmappableLayout, match="PCA"):
        column_layout(preprocessor, list(frame.columns), 2)


def test_a_layout_that_does_not_account_for_every_feature_is_refused() -> None:
    frame = _frame()[["tenure", "plan"]]
    preprocessor = ColumnTransformer([("cat", OneHotEncoder(), ["plan"])], remainder="passthrough").fit(frame)
    with pytest.raises(UnmappableLayout, match="accounts for 3 of 4"):
        column_layout(preprocessor, list(frame.columns), 4)


def test_sparse_contributions_fold_like_dense_ones() -> None:
    frame = _frame()[["tenure", "contract", "plan"]].fillna({"contract": "missing"})
    preprocessor = ColumnTransformer([
        ("num", StandardScaler(), ["tenure"]),
        ("cat", OneHotEncoder(), ["contract", "plan"]),
    ]).fit(frame)
    width = _dense(preprocessor.transform(frame.iloc[:1])).shape[1]
    layout = column_layout(preprocessor, list(frame.columns), width)
    values = np.random.RandomState(0).normal(size=(5, width))
    np.testing.assert_allclose(layout.fold(sp.csr_matrix(values)), layout.fold(values), rtol=0, atol=1e-12)
    assert layout.fold(values).shape == (5, 3)
