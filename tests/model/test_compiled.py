"""Compiled preprocessing equals scikit-learn's transform bit for bit, on synthetic and real preprocessors."""

from __future__ import annotations

import inspect
import pickle
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer, make_column_selector, make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

from api.errors import UnknownCategoryError
from api.model.columns import ColumnBatch, to_frame
from api.model.compiled import (
    CompiledMismatch,
    CompiledPreprocessor,
    UnsupportedPreprocessor,
    comparable,
    compile_preprocessor,
    verify_compiled,
)
from api.model.compiled.verify import edge_rows

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
REAL_MODEL = SHARED / "real-model"
REAL_CSV = SHARED / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
OLD_STACK = sklearn.__version__.startswith("1.1.")

NUMERIC = ["num_a", "num_b", "num_k"]
CATEGORICAL = ["cat_s", "cat_i", "cat_b", "cat_f"]
ORDER = ["cat_s", "num_a", "cat_i", "num_b", "cat_b", "num_k", "cat_f"]
STRINGS = ["red", "green", "blue", "teal", "rare1", "rare2"]


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def synthetic(n: int, seed: int) -> dict[str, np.ndarray]:
    """Rows of every kind the service sends: float64 numerics, object str/int/bool/float categories, NaNs."""
    rng = np.random.default_rng(seed)
    nan = float("nan")

    def holes(values: list[Any], rate: float = 0.08) -> np.ndarray:
        return _objects([nan if rng.random() < rate else v for v in values])

    num_a = rng.normal(50.0, 20.0, n)
    num_a[rng.random(n) < 0.1] = np.nan
    return {
        "cat_s": holes([str(v) for v in rng.choice(STRINGS, n, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05])]),
        "num_a": num_a,
        "cat_i": holes([int(v) for v in rng.integers(0, 3, n)]),
        "num_b": rng.exponential(1000.0, n) * rng.choice([-1.0, 1.0], n),
        "cat_b": _objects([bool(v) for v in rng.integers(0, 2, n)]),
        "num_k": rng.integers(0, 4, n).astype(np.float64),
        "cat_f": holes([float(v) for v in rng.choice([0.5, 1.5, 2.5], n)], rate=0.0),
    }


def ohe(**kwargs: Any) -> OneHotEncoder:
    """OneHotEncoder with `sparse=` spelled as this scikit-learn wants it."""
    if "sparse" in kwargs and "sparse_output" in inspect.signature(OneHotEncoder).parameters:
        kwargs["sparse_output"] = kwargs.pop("sparse")
    return OneHotEncoder(**kwargs)


def num_pipe() -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler())


def cat_pipe(**kwargs: Any) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="most_frequent"), ohe(**kwargs))


def missing_pipe(**kwargs: Any) -> Pipeline:
    """The real preprocessor's categorical pipeline (a "missing" string would not sort among ints)."""
    return make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), ohe(**kwargs))


def ct(*transformers: tuple[str, Any, Any], **kwargs: Any) -> ColumnTransformer:
    return ColumnTransformer(list(transformers), **kwargs)


def ordinal_infrequent() -> Any:
    if OLD_STACK:
        pytest.skip("OrdinalEncoder has no infrequent categories in scikit-learn 1.1")
    return ct(("o", OrdinalEncoder(min_frequency=30, handle_unknown="use_encoded_value", unknown_value=-1), ["cat_s"]))


def onehot_warn() -> Any:
    if "warn" not in (OneHotEncoder.__doc__ or "") or OLD_STACK:
        pytest.skip("handle_unknown='warn' arrived in scikit-learn 1.6")
    return ct(("cat", cat_pipe(max_categories=4, handle_unknown="warn"), CATEGORICAL))


# (factory, input columns); the factory returns the unfitted preprocessor.
CASES = [
    pytest.param(
        lambda: ct(
            ("num", num_pipe(), NUMERIC),
            ("cat", missing_pipe(drop="first", handle_unknown="ignore"), ["cat_s", "cat_b", "cat_f"]),
            ("cat_i", cat_pipe(drop="first", handle_unknown="ignore"), ["cat_i"]),
        ),
        ORDER,
        id="real-like-sparse",
    ),
    pytest.param(
        lambda: ct(
            ("num", make_pipeline(SimpleImputer(strategy="mean"), MinMaxScaler(clip=True)), NUMERIC),
            ("cat", cat_pipe(handle_unknown="ignore"), CATEGORICAL),
            sparse_threshold=0,
        ),
        ORDER,
        id="mean-minmax-clip-dense",
    ),
    pytest.param(
        lambda: ct(
            ("num", make_pipeline(SimpleImputer(), MinMaxScaler(feature_range=(-2, 3))), NUMERIC),
            ("cat", cat_pipe(handle_unknown="ignore", sparse=False), CATEGORICAL),
            sparse_threshold=1.0,
        ),
        ORDER,
        id="minmax-dense-ohe-sparse-ct",
    ),
    pytest.param(
        lambda: ct(
            ("num", SimpleImputer(strategy="median"), NUMERIC), ("cat", ohe(handle_unknown="ignore"), CATEGORICAL)
        ),
        ORDER,
        id="ohe-nan-category",
    ),
    pytest.param(
        lambda: ct(
            ("cat", ohe(handle_unknown="error"), ["cat_b", "cat_f"]),
            ("num", StandardScaler(with_mean=False), ["num_b"]),
        ),
        ORDER,
        id="ohe-error-partial-columns",
    ),
    pytest.param(
        lambda: ct(
            ("cat", cat_pipe(min_frequency=30, handle_unknown="infrequent_if_exist"), CATEGORICAL),
            ("num", "passthrough", ["num_k"]),
        ),
        ORDER,
        id="infrequent-min-frequency",
    ),
    pytest.param(
        lambda: ct(
            ("cat", cat_pipe(max_categories=3, handle_unknown="infrequent_if_exist", drop="first"), CATEGORICAL)
        ),
        ORDER,
        id="infrequent-max-categories-drop-first",
    ),
    pytest.param(
        lambda: ct(("cat", cat_pipe(min_frequency=0.1, handle_unknown="ignore", drop="if_binary"), CATEGORICAL)),
        ORDER,
        id="infrequent-ignore-if-binary",
    ),
    pytest.param(
        lambda: ct(("cat", cat_pipe(drop=["blue", 1, True, 0.5], handle_unknown="ignore"), CATEGORICAL)),
        ORDER,
        id="drop-array",
    ),
    pytest.param(
        lambda: ct(
            ("cat", cat_pipe(dtype=np.float32, handle_unknown="ignore"), ["cat_s", "cat_b"]),
            ("num", num_pipe(), NUMERIC),
        ),
        ORDER,
        id="ohe-float32",
    ),
    pytest.param(
        lambda: ct(("cat", cat_pipe(dtype=np.int8, sparse=False), ["cat_b"]), ("num", num_pipe(), ["num_a"])),
        ORDER,
        id="ohe-int8-dense",
    ),
    pytest.param(
        lambda: ct(("k", ohe(handle_unknown="ignore"), ["num_k"]), ("num", num_pipe(), ["num_a"])),
        ORDER,
        id="ohe-on-float64-column",
    ),
    pytest.param(
        lambda: ct(
            (
                "o",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2),
                CATEGORICAL,
            ),
            ("num", num_pipe(), NUMERIC),
        ),
        ORDER,
        id="ordinal-unknown-missing",
    ),
    pytest.param(
        lambda: ct(
            (
                "o",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OrdinalEncoder(), StandardScaler()),
                CATEGORICAL,
            )
        ),
        ORDER,
        id="ordinal-error-then-scaler",
    ),
    pytest.param(
        lambda: ct(("o", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan), ["cat_s", "cat_i"])),
        ORDER,
        id="ordinal-nan-codes",
    ),
    pytest.param(ordinal_infrequent, ORDER, id="ordinal-infrequent"),
    pytest.param(onehot_warn, ORDER, id="onehot-handle-unknown-warn"),
    pytest.param(
        lambda: ct(("num", num_pipe(), ["num_a"]), remainder="passthrough", sparse_threshold=0),
        ["num_a", "num_b", "num_k"],
        id="remainder-passthrough",
    ),
    pytest.param(
        lambda: ct(
            ("cat", cat_pipe(handle_unknown="ignore"), ["cat_s"]),
            remainder=make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
        ),
        ["cat_s", "num_a", "num_b"],
        id="remainder-estimator",
    ),
    pytest.param(
        lambda: ct(
            ("cat", cat_pipe(handle_unknown="ignore"), [0, 2]),
            ("num", num_pipe(), slice(3, 4)),
            ("mask", "passthrough", [False, True, False, False, False, False, False]),
            ("drop", "drop", ["num_k"]),
        ),
        ORDER,
        id="select-ints-slice-mask-drop",
    ),
    pytest.param(
        lambda: ct(
            ("num", num_pipe(), make_column_selector(dtype_include=np.float64)),
            ("cat", FunctionTransformer(), ["num_k"]),
        ),
        ["num_a", "num_k"],
        id="callable-selector-functiontransformer",
    ),
    pytest.param(
        lambda: ct(
            (
                "num",
                make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.5), StandardScaler(with_std=False)),
                NUMERIC,
            ),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), ohe(handle_unknown="ignore", sparse=False)),
                CATEGORICAL,
            ),
        ),
        ORDER,
        id="constant-numeric-most-frequent-dense",
    ),
    pytest.param(
        lambda: ct(
            (
                "num",
                make_pipeline("passthrough", SimpleImputer(strategy="median"), None, StandardScaler()),
                ["num_a", "all_nan", "num_b"],
            ),
            ("cat", cat_pipe(handle_unknown="ignore"), ["cat_s"]),
            sparse_threshold=1.0,
        ),
        ["num_a", "all_nan", "num_b", "cat_s"],
        id="empty-feature-dropped-sparse",
    ),
    pytest.param(
        lambda: make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC, id="top-level-pipeline"
    ),
    pytest.param(lambda: ohe(handle_unknown="ignore"), ["cat_s", "cat_i", "cat_b"], id="top-level-onehot"),
    pytest.param(
        lambda: make_pipeline(SimpleImputer(strategy="most_frequent"), OrdinalEncoder()),
        ["cat_s", "cat_b"],
        id="top-level-ordinal",
    ),
]


def case_factory(case_id: str) -> Callable[[], Any]:
    """The factory of the CASES row with this id."""
    return cast(Callable[[], Any], next(case.values[0] for case in CASES if case.id == case_id))


def batch_for(columns: list[str], n: int, seed: int) -> dict[str, np.ndarray]:
    rows = synthetic(n, seed)
    rows["all_nan"] = np.full(n, np.nan)
    return {name: rows[name] for name in columns}


def fitted(factory: Callable[[], Any], columns: list[str]) -> tuple[Any, Callable[[ColumnBatch], object]]:
    preprocessor = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preprocessor.fit(to_frame(batch_for(columns, 400, seed=1), columns))

    def library(batch: ColumnBatch) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return preprocessor.transform(to_frame(batch, columns))

    return preprocessor, library


def outcome(transform: Callable[[ColumnBatch], object], batch: ColumnBatch) -> tuple[object, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float64 overflow on extreme inputs, on both paths alike
        try:
            return comparable(transform(batch))
        except (UnknownCategoryError, ValueError, TypeError):
            return ("raises",)


@pytest.mark.parametrize(("factory", "columns"), CASES)
def test_compiled_equals_library(factory: Callable[[], Any], columns: list[str]) -> None:
    preprocessor, library = fitted(factory, columns)
    compiled = compile_preprocessor(preprocessor, columns)
    batch = batch_for(columns, 300, seed=2)
    assert comparable(compiled.transform(batch)) == comparable(library(batch))
    for i in range(0, 300, 23):
        row = {name: values[i : i + 1] for name, values in batch.items()}
        assert comparable(compiled.transform(row)) == comparable(library(row)), f"row {i}"
    verify_compiled(compiled, library, batch)


def _cell(name: str, columns: list[str]) -> st.SearchStrategy[Any]:
    if name in NUMERIC or name == "all_nan":
        return st.one_of(
            st.floats(allow_nan=True, allow_infinity=False, width=64),
            st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.0, 5e-324, 1e308, -1e308, float("nan")]),
        )
    choices: dict[str, list[Any]] = {
        "cat_s": STRINGS, "cat_i": [0, 1, 2], "cat_b": [True, False], "cat_f": [0.5, 1.5, 2.5]
    }  # fmt: skip
    seen = choices[name]
    return st.sampled_from([*seen, float("nan"), "unseen", "1", 1, 1.0, 7, 2**63, True, 0.5, ""])


@st.composite
def random_batches(draw: st.DrawFn, columns: list[str]) -> dict[str, np.ndarray]:
    n = draw(st.integers(1, 12))
    batch = {}
    for name in columns:
        cells = [draw(_cell(name, columns)) for _ in range(n)]
        batch[name] = np.array(cells, dtype=np.float64) if name in NUMERIC or name == "all_nan" else _objects(cells)
    return batch


HYPOTHESIS_IDS = {
    "real-like-sparse",
    "ohe-nan-category",
    "ohe-error-partial-columns",
    "infrequent-max-categories-drop-first",
    "ordinal-unknown-missing",
    "ohe-on-float64-column",
    "mean-minmax-clip-dense",
}
HYPOTHESIS_CASES = [case for case in CASES if case.id in HYPOTHESIS_IDS]


@pytest.mark.parametrize(("factory", "columns"), HYPOTHESIS_CASES)
def test_random_rows_bitwise(factory: Callable[[], Any], columns: list[str]) -> None:
    preprocessor, library = fitted(factory, columns)
    compiled = compile_preprocessor(preprocessor, columns)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(random_batches(columns))
    def check(batch: dict[str, np.ndarray]) -> None:
        assert outcome(compiled.transform, batch) == outcome(library, batch)

    check()


def _subclassed_scaler() -> Any:
    class MyScaler(StandardScaler):
        pass

    return ct(("num", MyScaler(), NUMERIC))


UNSUPPORTED = [
    pytest.param(
        lambda: ct(("num", SimpleImputer(add_indicator=True), NUMERIC)), "add_indicator", id="imputer-add-indicator"
    ),
    pytest.param(
        lambda: ct(("num", SimpleImputer(missing_values=-1.0), ["num_k"])),
        "missing_values",
        id="imputer-missing-values",
    ),
    pytest.param(
        lambda: ct(("num", StandardScaler(), NUMERIC), transformer_weights={"num": 2.0}),
        "weights",
        id="transformer-weights",
    ),
    pytest.param(lambda: ct(("num", KBinsDiscretizer(n_bins=3), ["num_b"])), "KBinsDiscretizer", id="unknown-step"),
    pytest.param(
        lambda: ct(("num", FunctionTransformer(np.log1p), ["num_k"])),
        "FunctionTransformer",
        id="function-transformer-func",
    ),
    pytest.param(
        lambda: ct(("cat", make_pipeline(ohe(handle_unknown="ignore"), StandardScaler(with_mean=False)), ["cat_b"])),
        "after a sparse",
        id="step-after-sparse-onehot",
    ),
    pytest.param(_subclassed_scaler, "MyScaler", id="subclass"),
    pytest.param(
        lambda: ct(("inner", ct(("num", StandardScaler(), ["num_b"])), ["num_b"])),
        "ColumnTransformer",
        id="nested-column-transformer",
    ),
    pytest.param(
        lambda: ct(("p", "passthrough", []), ("n", StandardScaler(), ["num_b"])),
        "selects no columns",
        id="empty-passthrough",
    ),
]


@pytest.mark.parametrize(("factory", "reason"), UNSUPPORTED)
def test_unsupported_configurations_raise(factory: Callable[[], Any], reason: str) -> None:
    preprocessor, _ = fitted(factory, ORDER)
    with pytest.raises(UnsupportedPreprocessor, match=reason):
        compile_preprocessor(preprocessor, ORDER)


def test_pandas_output_is_unsupported() -> None:
    if not hasattr(ColumnTransformer, "set_output"):
        pytest.skip("set_output arrived in scikit-learn 1.2")
    preprocessor, _ = fitted(lambda: ct(("num", StandardScaler(), NUMERIC)).set_output(transform="pandas"), ORDER)
    with pytest.raises(UnsupportedPreprocessor, match="set_output"):
        compile_preprocessor(preprocessor, ORDER)


def test_unknown_category_error_names_column_and_value() -> None:
    preprocessor, library = fitted(lambda: ct(("cat", ohe(handle_unknown="error"), ["cat_s", "cat_i"])), ORDER)
    compiled = compile_preprocessor(preprocessor, ORDER)
    row = batch_for(ORDER, 1, seed=3)
    row["cat_s"], row["cat_i"] = _objects(["red"]), _objects(["1"])
    with pytest.raises(UnknownCategoryError) as caught:
        compiled.transform(row)
    assert (caught.value.column, caught.value.value, caught.value.status_code) == ("cat_i", "1", 422)
    with pytest.raises(ValueError, match="unknown categories"):
        library(row)


@pytest.mark.parametrize(
    ("value", "expected_column"),
    [
        pytest.param(1, 1, id="int"),
        pytest.param(1.0, 1, id="float-equal"),
        pytest.param(True, 1, id="bool-equal"),
        pytest.param(np.int64(1), 1, id="numpy-int"),
        pytest.param("1", None, id="string-is-unknown"),
        pytest.param(float("nan"), 3, id="nan-category"),
    ],
)
def test_category_equality_follows_python_dict(value: object, expected_column: int | None) -> None:
    preprocessor, library = fitted(lambda: ct(("cat", ohe(handle_unknown="ignore", sparse=False), ["cat_i"])), ORDER)
    compiled = compile_preprocessor(preprocessor, ORDER)
    row = batch_for(ORDER, 1, seed=4)
    row["cat_i"] = _objects([value])
    out = compiled.transform(row)
    assert comparable(out) == comparable(library(row))
    assert list(np.flatnonzero(out[0])) == ([] if expected_column is None else [expected_column])


def test_verify_rejects_a_different_library_output() -> None:
    preprocessor, library = fitted(case_factory("real-like-sparse"), ORDER)
    compiled = compile_preprocessor(preprocessor, ORDER)
    with pytest.raises(CompiledMismatch, match="whole sample"):
        verify_compiled(compiled, lambda batch: cast(Any, library(batch)) * 2, batch_for(ORDER, 20, seed=5))


def test_verify_requires_both_paths_to_raise() -> None:
    preprocessor, library = fitted(lambda: ct(("cat", ohe(handle_unknown="error"), ["cat_s"])), ORDER)
    compiled = compile_preprocessor(preprocessor, ORDER)
    sample = batch_for(ORDER, 20, seed=6)
    verify_compiled(compiled, library, sample)
    _, lenient = fitted(lambda: ct(("cat", ohe(handle_unknown="ignore"), ["cat_s"])), ORDER)
    with pytest.raises(CompiledMismatch, match=r"__never_seen__.*compiled raises"):
        verify_compiled(compiled, lenient, sample)


def test_verify_checks_each_batched_edge_row() -> None:
    preprocessor, library = fitted(case_factory("mean-minmax-clip-dense"), ORDER)
    compiled = compile_preprocessor(preprocessor, ORDER)

    def off_by_one_row(batch: ColumnBatch) -> object:
        out = cast(np.ndarray, library(batch))
        out[batch["num_b"] == 1e308] += 1.0
        return out

    with pytest.raises(CompiledMismatch, match=r"num_b=1e\+308 \(float64\): library dense"):
        verify_compiled(compiled, off_by_one_row, batch_for(ORDER, 20, seed=7))


def test_verify_batches_library_calls() -> None:
    preprocessor, library = fitted(case_factory("real-like-sparse"), ORDER)
    compiled = compile_preprocessor(preprocessor, ORDER)
    calls = 0

    def counted(batch: ColumnBatch) -> object:
        nonlocal calls
        calls += 1
        return library(batch)

    sample = batch_for(ORDER, 200, seed=8)
    verify_compiled(compiled, counted, sample)
    n_edges = len(list(edge_rows(sample, category_dtypes=compiled.category_dtypes)))
    # Whole sample, 4 single rows, a batch per dtype signature, the rows compiled rejects (±inf), the union.
    assert n_edges > 100
    assert calls <= 20


# Preprocessors fitted on a DataFrame with int64, bool, float64 and string columns, as
# make_column_transformer users do: encoders fitted on numeric columns get numeric categories, and
# the service sends those columns as int64/bool without nulls, float64 with NaN (api.model.columns).

FRAME_ORDER = ["senior", "contract", "plan", "code", "level", "flag", "charges", "children"]
FRAME_FIT_DTYPES = {
    "senior": np.dtype(np.int64),
    "contract": np.dtype(object),
    "plan": np.dtype(object),
    "code": np.dtype(np.int64),
    "level": np.dtype(np.float64),
    "flag": np.dtype(np.bool_),
    "charges": np.dtype(np.float64),
    "children": np.dtype(np.int64),
}


def frame_raw(n: int, seed: int, *, nulls: bool = False, unseen: bool = False) -> dict[str, np.ndarray]:
    """Raw column values with NaN for nulls; without `nulls` they keep the fitted DataFrame dtypes."""
    rng = np.random.default_rng(seed)
    raw = {
        "senior": rng.integers(0, 2, n),
        "contract": _objects([str(v) for v in rng.choice(["monthly", "yearly", "two-year"], n)]),
        "plan": _objects([str(v) for v in rng.choice(["basic", "plus"], n)]),
        "code": rng.choice([10, 20, 30, 40], n),
        "level": rng.choice([0.5, 1.5, 2.5], n),
        "flag": rng.integers(0, 2, n).astype(bool),
        "charges": rng.normal(70.0, 20.0, n),
        "children": rng.integers(0, 4, n),
    }
    raw["level"][rng.random(n) < 0.1] = np.nan  # fitted too: its categories end with NaN
    raw["contract"][rng.random(n) < 0.1] = float("nan")
    if unseen:
        for name, value in [("senior", 2), ("code", -5), ("level", 3.5), ("contract", "weekly"), ("children", 9)]:
            raw[name][rng.random(n) < 0.05] = value
    if nulls:
        for name in ["senior", "code", "flag", "charges", "children"]:
            raw[name] = raw[name].astype(np.float64)
            raw[name][rng.random(n) < 0.1] = np.nan
    return raw


def as_sent(raw: dict[str, np.ndarray], encoded: set[str]) -> dict[str, np.ndarray]:
    """The columns the service builds from these values (api.model.columns)."""
    out: dict[str, np.ndarray] = {}
    for name, values in raw.items():
        fitted_dtype = FRAME_FIT_DTYPES[name]
        if fitted_dtype.kind == "O":
            out[name] = _objects(values.tolist())
        elif name in encoded and fitted_dtype.kind in "biu":
            floats = values.astype(np.float64)
            out[name] = floats if np.isnan(floats).any() else floats.astype(fitted_dtype)
        else:
            out[name] = values.astype(np.float64)
    return out


FRAME_CASES = [
    pytest.param(
        lambda: make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["senior", "contract", "plan"]),
            (StandardScaler(), ["charges", "children"]),
        ),
        {"senior", "contract", "plan"},
        id="onehot-int64-and-strings",
    ),
    pytest.param(
        lambda: make_column_transformer(
            (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["code", "level"]),
            (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["charges"]),
        ),
        {"code", "level"},
        id="ordinal-int64-float64",
    ),
    pytest.param(
        lambda: make_column_transformer((OrdinalEncoder(), ["code", "level"])), {"code", "level"}, id="ordinal-error"
    ),
    pytest.param(
        lambda: make_column_transformer(
            (ohe(drop="if_binary", sparse=False), ["flag", "senior"]),
            (ohe(handle_unknown="ignore", sparse=False), ["contract"]),
        ),
        {"flag", "senior", "contract"},
        id="onehot-bool-dense",
    ),
    pytest.param(
        lambda: make_column_transformer(
            (make_pipeline(SimpleImputer(strategy="most_frequent"), ohe(handle_unknown="ignore")), ["senior", "code"]),
            (SimpleImputer(strategy="constant", fill_value=0), ["children"]),
            (MinMaxScaler(), ["level"]),
        ),
        {"senior", "code"},
        id="imputed-int64-onehot",
    ),
    pytest.param(
        lambda: make_column_transformer(
            (ohe(handle_unknown="ignore"), ["senior", "flag"]),
            (StandardScaler(), ["senior", "children"]),
            (make_pipeline(SimpleImputer(strategy="median"), MinMaxScaler()), ["flag", "code"]),
        ),
        {"senior", "flag"},
        id="encoded-columns-also-scaled",
    ),
]


@pytest.mark.parametrize(("factory", "encoded"), FRAME_CASES)
def test_frame_fitted_numeric_categories(factory: Callable[[], Any], encoded: set[str]) -> None:
    preprocessor = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preprocessor.fit(pd.DataFrame(frame_raw(400, seed=1)))

    def library(batch: ColumnBatch) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return preprocessor.transform(to_frame(batch, FRAME_ORDER))

    compiled = compile_preprocessor(preprocessor, FRAME_ORDER)
    assert dict(compiled.category_dtypes) == {name: FRAME_FIT_DTYPES[name] for name in encoded}
    clean = as_sent(frame_raw(300, seed=2), encoded)
    assert {name: clean[name].dtype for name in encoded} == {name: FRAME_FIT_DTYPES[name] for name in encoded}
    assert comparable(compiled.transform(clean)) == comparable(library(clean))
    for seed, kinds in enumerate([{"nulls": True}, {"unseen": True}, {"nulls": True, "unseen": True}], start=3):
        raw = frame_raw(300, seed, **kinds)
        assert outcome(compiled.transform, as_sent(raw, encoded)) == outcome(library, as_sent(raw, encoded)), kinds
        for i in range(0, 300, 23):
            row = as_sent({name: values[i : i + 1] for name, values in raw.items()}, encoded)
            assert outcome(compiled.transform, row) == outcome(library, row), (kinds, i)
    verify_compiled(compiled, library, as_sent(frame_raw(60, seed=6), encoded))
    verify_compiled(compiled, library, as_sent(frame_raw(60, seed=7, nulls=True), encoded))


_FRAME_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=False, width=64),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, 2.5, 10.0, 20.0, 2.0**53 + 2, 2.0**63, float("nan")]),
)
_FRAME_INTS = st.one_of(
    st.sampled_from([0, 1, 2, -1, 10, 20, 40, -5, 2**53 + 1, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)


@st.composite
def frame_batches(draw: st.DrawFn, encoded: set[str]) -> dict[str, np.ndarray]:
    """Batches in every dtype the contract allows: int64/bool without nulls, float64 with any floats."""
    n = draw(st.integers(1, 10))
    batch: dict[str, np.ndarray] = {}
    for name in FRAME_ORDER:
        kind = FRAME_FIT_DTYPES[name].kind
        if kind == "O":
            seen = ["monthly", "yearly", "two-year", "basic", "plus"]
            batch[name] = _objects(draw(st.lists(st.sampled_from([*seen, float("nan"), "x"]), min_size=n, max_size=n)))
        elif name in encoded and kind == "b" and draw(st.booleans()):
            batch[name] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=np.bool_)
        elif name in encoded and kind == "i" and draw(st.booleans()):
            batch[name] = np.array(draw(st.lists(_FRAME_INTS, min_size=n, max_size=n)), dtype=np.int64)
        else:
            batch[name] = np.array(draw(st.lists(_FRAME_FLOATS, min_size=n, max_size=n)), dtype=np.float64)
    return batch


@pytest.mark.parametrize(("factory", "encoded"), FRAME_CASES)
def test_frame_random_rows_bitwise(factory: Callable[[], Any], encoded: set[str]) -> None:
    preprocessor = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preprocessor.fit(pd.DataFrame(frame_raw(400, seed=1)))
    compiled = compile_preprocessor(preprocessor, FRAME_ORDER)

    def library(batch: ColumnBatch) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return preprocessor.transform(to_frame(batch, FRAME_ORDER))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frame_batches(encoded))
    def check(batch: dict[str, np.ndarray]) -> None:
        assert outcome(compiled.transform, batch) == outcome(library, batch)

    check()


def test_edge_rows_follow_the_column_contract() -> None:
    int64, boolean, float64, obj = (np.dtype(d) for d in (np.int64, np.bool_, np.float64, object))
    sample = {
        "senior": np.array([1, 0]),
        "code": np.array([10.0, np.nan]),
        "flag": np.array([True, False]),
        "charges": np.array([70.5, 20.0]),
        "contract": _objects(["monthly", float("nan")]),
    }
    hints = {"senior": int64, "code": int64, "flag": boolean, "contract": obj}
    rows = list(edge_rows(sample, category_dtypes=hints))
    allowed = {"senior": {int64, float64}, "code": {int64, float64}, "flag": {boolean, float64}}
    for label, row in rows:
        assert {len(values) for values in row.values()} == {1}, label
        for name, values in row.items():
            assert values.dtype in allowed.get(name, {sample[name].dtype}), (label, name)
            if values.dtype != float64:
                assert values.dtype.kind == "O" or not np.isnan(values.astype(np.float64)).any(), (label, name)
    first = rows[0][1]
    assert {name: (values.dtype, values.tolist()) for name, values in first.items() if name != "senior"} == {
        "code": (int64, [10]),  # one non-null row of an integer column arrives as int64
        "flag": (boolean, [True]),
        "charges": (float64, [70.5]),
        "contract": (obj, ["monthly"]),
    }
    labels = {label for label, _ in rows}
    assert {"senior=nan (float64)", "senior=-1 (int64)", "senior=0.5 (float64)", "flag=True (bool)"} <= labels
    assert "code=9223372036854775807 (int64)" in labels
    assert not any(label.startswith("charges=") and not label.endswith("(float64)") for label in labels)
    # Without hints the sample's dtypes decide: int64 columns still get int64 and float64 cells.
    assert {row["senior"].dtype for _, row in edge_rows({"senior": sample["senior"]})} == {int64, float64}


# The first user's real preprocessor (scikit-learn 1.1.3 only).

Real = tuple[Any, CompiledPreprocessor, dict[str, np.ndarray], list[str]]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Real:
    if not (REAL_MODEL.is_dir() and REAL_CSV.is_file()):
        pytest.skip(f"the first user's artifacts are not here ({SHARED} is absent)")
    if not OLD_STACK:
        pytest.skip(f"the real preprocessor only transforms under scikit-learn 1.1 (this is {sklearn.__version__})")
    return _load_real(tmp_path_factory.mktemp("real-model"))


def _load_real(directory: Path) -> Real:
    copy = directory / "preprocessor_20250717_214053.pkl"
    shutil.copyfile(REAL_MODEL / copy.name, copy)
    preprocessor = joblib.load(copy)
    frame = pd.read_csv(REAL_CSV).drop(columns=["Churn"])
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"].replace(" ", np.nan))
    order = [str(name) for name in preprocessor.feature_names_in_]
    numeric = {"tenure", "MonthlyCharges", "TotalCharges"}
    batch = {
        name: frame[name].to_numpy(dtype=np.float64) if name in numeric else _objects(frame[name].tolist())
        for name in order
    }
    return preprocessor, compile_preprocessor(preprocessor, order), batch, order


def _real_library(preprocessor: Any, order: list[str]) -> Callable[[ColumnBatch], object]:
    def library(batch: ColumnBatch) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return preprocessor.transform(to_frame(batch, order))

    return library


@pytest.mark.real_bundle
@pytest.mark.slow
def test_real_rows_one_at_a_time(real: Real) -> None:
    preprocessor, compiled, batch, order = real
    library = _real_library(preprocessor, order)
    whole = library(batch).tocsr()  # type: ignore[attr-defined]
    n_rows = len(batch["customerID"])
    assert n_rows == 7043
    for i in range(n_rows):
        row = {name: values[i : i + 1] for name, values in batch.items()}
        got = compiled.transform(row)
        # Each row against the library's own transform of that row for every 25th row (17 ms a
        # call), against the row of the library's whole-batch output for all of them.
        expected = library(row) if i % 25 == 0 else whole[i]
        assert comparable(got) == comparable(expected), f"row {i}"


@pytest.mark.real_bundle
def test_real_batches_and_lightgbm(real: Real) -> None:
    preprocessor, compiled, batch, order = real
    library = _real_library(preprocessor, order)
    for start, stop in [(0, 7043), (0, 1000), (1000, 1100), (7042, 7043), (3000, 5500)]:
        part = {name: values[start:stop] for name, values in batch.items()}
        assert comparable(compiled.transform(part)) == comparable(library(part)), (start, stop)
    with (REAL_MODEL / "model_20250717_214252.pkl").open("rb") as handle:
        booster = pickle.load(handle)
    expected = booster.predict(library(batch), num_threads=1)
    got = booster.predict(compiled.transform(batch), num_threads=1)
    assert expected.tobytes() == got.tobytes()


@pytest.mark.real_bundle
def test_real_verify_passes(real: Real) -> None:
    preprocessor, compiled, batch, order = real
    assert all(values.dtype in (np.float64, object) for values in batch.values())  # object categories
    library = _real_library(preprocessor, order)
    calls = 0

    def counted(columns: ColumnBatch) -> object:
        nonlocal calls
        calls += 1
        return library(columns)

    sample = {name: values[::35] for name, values in batch.items()}  # 202 rows, a drift profile's sample
    verify_compiled(compiled, counted, sample)
    # ~17 ms a library call: a dozen batched calls instead of one per edge row (~400) keeps startup short.
    assert calls <= 20
