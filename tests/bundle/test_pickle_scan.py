"""inspect_pickle: every global and recorded version, read statically from pickle and joblib files."""

from __future__ import annotations

import io
import pickle
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from api.bundle.pickle_scan import WRAPPER, inspect_pickle, inspect_stream
from api.errors import ArtifactError, UnsafeArtifactError
from api.model.kinds import builtin_kinds, trust_for

# What the built-in model kinds read from pickles: the scikit-learn release, LightGBM's model format, XGBoost's release.
RECORDERS = trust_for(builtin_kinds()).recorders

# What the README of the real artifacts lists as the globals the three files reference.
REAL_GLOBALS = {
    ("builtins", "slice"), ("collections", "OrderedDict"), ("collections", "defaultdict"), WRAPPER,
    ("lightgbm.basic", "Booster"), ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "dtype"), ("numpy", "float64"), ("numpy", "ndarray"),
    ("sklearn.compose._column_transformer", "ColumnTransformer"), ("sklearn.impute._base", "SimpleImputer"),
    ("sklearn.pipeline", "Pipeline"), ("sklearn.preprocessing._data", "StandardScaler"),
    ("sklearn.preprocessing._encoders", "OneHotEncoder"),
}
REAL = [
    pytest.param("preprocessor_20250717_214053.pkl", "joblib", {"1.1.3"}, None, id="preprocessor"),
    pytest.param("model_20250717_214053.pkl", "pickle", set(), "v3", id="model-214053"),
    pytest.param("model_20250717_214252.pkl", "pickle", set(), "v3", id="model-214252"),
]


@pytest.mark.parametrize(("name", "container", "sklearn_versions", "lightgbm_format"), REAL)
def test_real_artifact_is_read_statically_and_fast(
    real_dir: Path, name: str, container: str, sklearn_versions: set[str], lightgbm_format: str | None
) -> None:
    started = time.perf_counter()
    inspection = inspect_pickle(real_dir / name, RECORDERS)
    assert time.perf_counter() - started < 0.5
    assert inspection.container == container
    assert inspection.recorded.get("sklearn", set()) == sklearn_versions
    assert inspection.numpy_namespace == "numpy.core"
    assert inspection.recorded.get("lightgbm_model_format") == ({lightgbm_format} if lightgbm_format else None)
    assert inspection.globals <= REAL_GLOBALS


def test_real_artifacts_reference_exactly_the_documented_globals(real_dir: Path) -> None:
    found = set().union(*(inspect_pickle(real_dir / name).globals for name in real_dir.iterdir()))
    assert found == REAL_GLOBALS


def test_fresh_estimator_records_installed_versions(tmp_path: Path) -> None:
    import sklearn
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])))
    inspection = inspect_pickle(path, RECORDERS)
    assert inspection.recorded["sklearn"] == {sklearn.__version__}
    assert inspection.numpy_namespace == ("numpy._core" if np.__version__ >= "2" else "numpy.core")
    assert ("sklearn.linear_model._logistic", "LogisticRegression") in inspection.globals


@pytest.mark.parametrize("save", [
    pytest.param(joblib.dump, id="joblib"),
    pytest.param(lambda o, p: p.write_bytes(pickle.dumps(o, protocol=2)), id="pickle-protocol-2"),
])
def test_lightgbm_model_text_format_is_read(tmp_path: Path, save: Callable[[Any, Path], Any]) -> None:
    import lightgbm as lgb
    import sklearn

    X = np.random.RandomState(0).normal(size=(100, 3))
    model = lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(X, X[:, 0] > 0)
    path = tmp_path / "model.pkl"
    save(model, path)
    inspection = inspect_pickle(path, RECORDERS)
    assert inspection.recorded["lightgbm_model_format"] == {f"v{lgb.__version__.split('.')[0]}"}
    # Only the sklearn LabelEncoder inside counts: LightGBM's own classes are not sklearn's to judge.
    assert inspection.recorded.get("sklearn", set()) <= {sklearn.__version__}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_xgboost_version_is_read(tmp_path: Path, protocol: int) -> None:
    xgb = pytest.importorskip("xgboost", reason="xgboost is not installed in this stack")
    X = np.random.RandomState(0).normal(size=(100, 3))
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(xgb.XGBRegressor(n_estimators=2).fit(X, X[:, 0]), protocol=protocol))
    assert inspect_pickle(path, RECORDERS).recorded["xgboost"] == {".".join(xgb.__version__.split(".")[:3])}


def _u(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


HOSTILE_STREAMS = [
    pytest.param(b"\x80\x04cbuiltins\nstr\n" + _u("os") + b"\x85R" + _u("system") + b"\x93.",
                 "computed value", id="stack-global-from-a-call-result"),
    pytest.param(b"\x80\x04" + _u("id") + b"Q.", "persistent id", id="persistent-id"),
    pytest.param(b"\x80\x04\x82\x01.", "extension code", id="extension-code"),
    pytest.param(b"\x80\x05\x97.", "out-of-band buffer", id="out-of-band-buffer"),
]


@pytest.mark.parametrize(("stream", "reason"), HOSTILE_STREAMS)
def test_unverifiable_constructs_are_refused(stream: bytes, reason: str) -> None:
    with pytest.raises(UnsafeArtifactError, match=reason):
        inspect_stream(stream, path=Path("hostile.pkl"))


def test_stack_global_operands_are_followed_through_the_memo() -> None:
    stream = (b"\x80\x04" + _u("os") + b"\x94" + _u("system") + b"\x94" + _u("collections") + _u("OrderedDict")
              + b"00h\x00h\x01\x93" + _u("true") + b"\x85R.")
    assert inspect_stream(stream, path=Path("memo.pkl")).globals == {("os", "system")}


def test_globals_inside_a_joblib_object_array_are_found(joblib_nesting: Callable[[bytes], bytes]) -> None:
    stream = joblib_nesting(b"\x80\x04cposix\nsystem\n" + _u("true") + b"\x85R.")
    inspection = inspect_stream(stream, path=Path("nested.pkl"))
    assert ("posix", "system") in inspection.globals
    assert inspection.container == "joblib" and len(inspection.array_spans) == 2


def test_array_data_hidden_inside_a_frame_is_refused() -> None:
    buffer = io.BytesIO()
    joblib.dump(np.arange(4.0), buffer, protocol=4)
    data = buffer.getvalue()
    (size,) = struct.unpack("<Q", data[3:11])
    assert data[2:3] == b"\x95" and data[10 + size:11 + size] == b"b"  # FRAME … BUILD
    # Two opcodes slipped into the frame after the wrapper's BUILD: the real unpickler would run
    # them after reading the array from the file, while a linear reader would take them for data.
    tampered = data[:3] + struct.pack("<Q", size + 2) + data[11:11 + size] + b"N0" + data[11 + size:]
    with pytest.raises(UnsafeArtifactError, match="inside a pickle frame"):
        inspect_stream(tampered, path=Path("framed.pkl"))


ARRAYS = {
    "float64": np.linspace(0, 1, 17),
    "int32-fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "big-endian": np.arange(5, dtype=">f8"),
    "unicode": np.array(["a", "bcd", "é"]),
    "structured": np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4", (2,))]),
    "zero-d": np.array(3.5),
    "empty": np.zeros((0, 4)),
    "object": np.array(["x", 1, None], dtype=object),
    "csr": sp.random(20, 30, density=0.1, format="csr", random_state=0),  # three more arrays
}
COMPRESSIONS = [
    pytest.param(0, None, id="uncompressed"),
    pytest.param(3, "zlib", id="zlib"),
    pytest.param(("gzip", 3), "gzip", id="gzip"),
    pytest.param(("bz2", 3), "bz2", id="bz2"),
    pytest.param(("xz", 3), "xz", id="xz"),
    pytest.param(("lzma", 3), "lzma", id="lzma"),
]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize(("compress", "compression"), COMPRESSIONS)
def test_joblib_layout_is_walked_array_by_array(
    tmp_path: Path, compress: Any, compression: str | None, protocol: int
) -> None:
    path = tmp_path / "arrays.pkl"
    joblib.dump(ARRAYS, path, compress=compress, protocol=protocol)
    inspection = inspect_pickle(path)
    assert inspection.container == "joblib" and inspection.compression == compression
    assert len(inspection.array_spans) == len(ARRAYS) - 1 + 3
    assert all(start < end for start, end in inspection.array_spans)


def test_unreadable_file_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read"):
        inspect_pickle(tmp_path / "absent.pkl")


def _small_joblib() -> bytes:
    buffer = io.BytesIO()
    joblib.dump({"w": np.arange(6.0), "names": np.array(["a", "b"], dtype=object), "s": slice(1, 3)}, buffer)
    return buffer.getvalue()


SMALL_JOBLIB = _small_joblib()


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(0, len(SMALL_JOBLIB)), flips=st.lists(st.tuples(st.integers(0, len(SMALL_JOBLIB) - 1),
                                                                      st.integers(0, 255)), max_size=4))
def test_damaged_streams_fail_only_with_artifact_errors(cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SMALL_JOBLIB)
    for at, value in flips:
        data[at] = value
    stream = bytes(data[:cut] if cut else data)
    try:
        inspection = inspect_stream(stream, path=Path("fuzzed.pkl"))
    except ArtifactError as exc:
        assert re.match(r"fuzzed\.pkl[ :]", exc.message), exc.message  # names the file, no other path
        return
    # A stream that still parses is described consistently with what was read.
    assert inspection.path == Path("fuzzed.pkl")
    assert 0 <= inspection.protocol <= pickle.HIGHEST_PROTOCOL
    assert all(0 <= start <= stop <= len(stream) for start, stop in inspection.array_spans)


def test_a_protocol_newer_than_pickle_knows_is_refused_before_unpickling() -> None:
    stream = bytearray(SMALL_JOBLIB)
    assert stream[0] == pickle.PROTO[0]  # found by the fuzz test above: PROTO 6 was described as protocol 6
    stream[1] = pickle.HIGHEST_PROTOCOL + 1
    with pytest.raises(ArtifactError, match=r"fuzzed\.pkl.*unsupported pickle protocol"):
        inspect_stream(bytes(stream), path=Path("fuzzed.pkl"))


@pytest.mark.parametrize(
    ("cut", "valid"),
    [
        pytest.param(0, True, id="whole"),
        pytest.param(len(SMALL_JOBLIB) // 2, False, id="cut-in-half"),
        pytest.param(len(SMALL_JOBLIB) - 1, False, id="without-STOP"),
        pytest.param(1, False, id="one-byte"),
    ],
)
def test_truncated_streams_are_artifact_errors(cut: int, valid: bool) -> None:
    stream = SMALL_JOBLIB[:cut] if cut else SMALL_JOBLIB
    if valid:
        inspection = inspect_stream(stream, path=Path("small.pkl"))
        assert WRAPPER in inspection.globals and inspection.container == "joblib"
        assert len(inspection.array_spans) == 2  # the float array and the object array
        return
    with pytest.raises(ArtifactError, match=r"^small\.pkl is not a valid pickle"):
        inspect_stream(stream, path=Path("small.pkl"))
