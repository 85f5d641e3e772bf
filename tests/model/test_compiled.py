"""Compiled preprocessing equals scikit-learn's transform bit for bit, on synthetic and real preprocessors."""

from __future__ import annotations

import inspect
import pickle
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer, make_column_selector
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

from api.model.columns import ColumnBatch, to_frame
from api.model.compiled import (
    CompiledMismatch,
    CompiledPreprocessor,
    UnknownCategoryError,
    UnsupportedPreprocessor,
    comparable,
    compile_preprocessor,
    verify_compiled,
)

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
    seen: list[Any] = {"cat_s": STRINGS, "cat_i": [0, 1, 2], "cat_b": [True, False], "cat_f": [0.5, 1.5, 2.5]}[name]
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
    preprocessor, library = fitted(CASES[0].values[0], ORDER)
    compiled = compile_preprocessor(preprocessor, ORDER)
    with pytest.raises(CompiledMismatch, match="whole sample"):
        verify_compiled(compiled, lambda batch: library(batch) * 2, batch_for(ORDER, 20, seed=5))


def test_verify_requires_both_paths_to_raise() -> None:
    preprocessor, library = fitted(lambda: ct(("cat", ohe(handle_unknown="error"), ["cat_s"])), ORDER)
    compiled = compile_preprocessor(preprocessor, ORDER)
    sample = batch_for(ORDER, 20, seed=6)
    verify_compiled(compiled, library, sample)
    _, lenient = fitted(lambda: ct(("cat", ohe(handle_unknown="ignore"), ["cat_s"])), ORDER)
    with pytest.raises(CompiledMismatch, match=r"__never_seen__.*compiled raises"):
        verify_compiled(compiled, lenient, sample)


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
    sample = {name: values[:64] for name, values in batch.items()}
    verify_compiled(compiled, _real_library(preprocessor, order), sample, single_rows=8)
