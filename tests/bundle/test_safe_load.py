"""load_artifact: hostile pickles are refused without running; real and freshly fitted models load exactly."""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import pickle
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from api.bundle import safe_load
from api.bundle.pickle_scan import inspect_pickle
from api.bundle.safe_load import sha256_file
from api.errors import ArtifactError, UnsafeArtifactError
from api.model.kinds import builtin_kinds, trust_for

# What the service checks artifacts against: the base families plus every built-in model kind's entries.
TRUST = trust_for(builtin_kinds())


def load_artifact(path: Path, *, expected_sha256: str | None = None) -> object:
    return safe_load.load_artifact(path, TRUST, expected_sha256=expected_sha256)

# ---------------------------------------------------------------- hostile payloads


def _reduce(func: Callable[..., Any], *args: Any) -> bytes:
    """A pickle that calls func(*args) when loaded: the classic __reduce__ payload."""

    class Payload:
        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            return func, args

    return pickle.dumps(Payload(), protocol=4)


def _u(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _create(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _os_system(marker: Path) -> bytes:
    # Protocol 0, spelled `os system` (pickling os.system itself writes `posix system`).
    return b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."


def _memo_stack_global(marker: Path) -> bytes:
    # "os" and "system" go to the memo; decoy strings sit right before STACK_GLOBAL but are
    # popped, so a scanner that looks at the preceding string opcodes sees collections.OrderedDict.
    return (b"\x80\x04" + _u("os") + b"\x94" + _u("system") + b"\x94" + _u("collections") + _u("OrderedDict")
            + b"00h\x00h\x01\x93" + _u(f"touch {marker}") + b"\x85R.")


def _getattr_import_chain(marker: Path) -> bytes:
    # getattr(__import__("os"), "system")("touch …")
    return (b"\x80\x04cbuiltins\ngetattr\ncbuiltins\n__import__\n" + _u("os") + b"\x85R" + _u("system")
            + b"\x86R" + _u(f"touch {marker}") + b"\x85R.")


def _runstring(marker: Path) -> bytes:
    from numpy.testing._private.utils import runstring

    return _reduce(runstring, _create(marker), {})


def _numpy_load(marker: Path) -> bytes:
    # numpy.load(…, allow_pickle=True) of an .npy whose object array carries the real payload.
    inner = marker.with_name("inner.npy")
    np.save(inner, np.array([_Evil(f"touch {marker}")], dtype=object), allow_pickle=True)
    return _reduce(np.load, str(inner), None, True)


def _pandas_read_pickle(marker: Path) -> bytes:
    inner = marker.with_name("inner.pkl")
    inner.write_bytes(_reduce(os.system, f"touch {marker}"))
    return _reduce(pd.read_pickle, str(inner))


def _sklearn_script_runner(marker: Path) -> bytes:
    from sklearn.utils import _testing

    runner = getattr(_testing, "assert_run_python_script_without_output", None) or _testing.assert_run_python_script
    return _reduce(runner, _create(marker))


def _estimator_param(marker: Path) -> bytes:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    model.C = _Evil(f"touch {marker}")
    return pickle.dumps(model, protocol=4)


class _Evil:
    """Pickles as os.system(command): what a hostile estimator parameter looks like on disk."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return os.system, (self.command,)


PAYLOADS = [
    pytest.param(_os_system, "os.system", id="os.system"),
    pytest.param(lambda m: _reduce(os.system, f"touch {m}"), "posix.system", id="posix.system"),
    pytest.param(lambda m: _reduce(subprocess.Popen, ["touch", str(m)]), "subprocess.Popen", id="subprocess.Popen"),
    pytest.param(lambda m: _reduce(subprocess.check_output, ["touch", str(m)]), "subprocess.check_output",
                 id="subprocess.check_output"),
    pytest.param(lambda m: _reduce(eval, _create(m)), "builtins.eval", id="builtins.eval"),
    pytest.param(lambda m: _reduce(exec, _create(m)), "builtins.exec", id="builtins.exec"),
    pytest.param(_memo_stack_global, "os.system", id="stack-global-from-memo"),
    pytest.param(_getattr_import_chain, "builtins.__import__", id="getattr-import-chain"),
    pytest.param(_runstring, "numpy.testing._private.utils.runstring", id="numpy-runstring"),
    pytest.param(lambda m: _reduce(np.memmap, str(m), np.uint8, "w+", 0, (1,)), "numpy.memmap", id="numpy.memmap"),
    pytest.param(_numpy_load, "load", id="numpy.load"),
    pytest.param(_pandas_read_pickle, "read_pickle", id="pandas.read_pickle"),
    pytest.param(lambda m: _reduce(functools.partial(os.system, f"touch {m}")), "functools.partial",
                 id="functools.partial"),
    pytest.param(_sklearn_script_runner, "assert_run_python_script", id="sklearn-script-runner"),
    pytest.param(_estimator_param, "posix.system", id="logistic-regression-param"),
]
CONTAINERS = [pytest.param("pickle", id="pickle"), pytest.param("joblib", id="joblib-object-array")]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize(("payload", "named"), PAYLOADS)
def test_hostile_pickle_is_refused_without_running(
    tmp_path: Path, payload: Callable[[Path], bytes], named: str, container: str,
    joblib_nesting: Callable[[bytes], bytes],
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model_20250101_000000.pkl"
    stream = payload(marker)
    path.write_bytes(joblib_nesting(stream) if container == "joblib" else stream)
    with pytest.raises(UnsafeArtifactError) as refused:
        load_artifact(path)
    assert path.name in refused.value.message and named in refused.value.message
    time.sleep(0.05)  # a Popen child would need a moment to touch the marker
    assert not marker.exists()


_UNRESTRICTED = (
    "import sys, pickle, joblib\n"
    "path, container = sys.argv[1:]\n"
    "try:\n"
    "    joblib.load(path) if container == 'joblib' else pickle.loads(open(path, 'rb').read())\n"
    "except Exception:\n"
    "    pass\n"
)


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize(("payload", "named"), [p for p in PAYLOADS if p.id != "functools.partial"])
def test_the_same_payload_runs_under_an_unrestricted_loader(
    tmp_path: Path, payload: Callable[[Path], bytes], named: str, container: str,
    joblib_nesting: Callable[[bytes], bytes],
) -> None:
    """Proof that the refusal above matters: plain pickle/joblib.load (in a child process) run it."""
    marker = tmp_path / "pwned"
    path = tmp_path / "payload.pkl"
    stream = payload(marker)
    path.write_bytes(joblib_nesting(stream) if container == "joblib" else stream)
    # The child imports this module's _Evil class by name for the numpy.load case.
    subprocess.run([sys.executable, "-c", _UNRESTRICTED, str(path), container], timeout=120, check=False,
                   capture_output=True, cwd=Path(__file__).parent)
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()


def test_hostile_object_at_the_top_of_a_joblib_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "bundle.joblib"
    joblib.dump({"weights": np.arange(8.0), "hook": _Evil(f"touch {marker}")}, path)
    with pytest.raises(UnsafeArtifactError, match=r"posix\.system"):
        load_artifact(path)
    assert not marker.exists()


@pytest.mark.parametrize("save", [
    pytest.param(joblib.dump, id="joblib"),
    pytest.param(lambda m, p: p.write_bytes(pickle.dumps(m, protocol=5)), id="pickle"),
])
def test_estimator_holding_a_function_is_refused(tmp_path: Path, save: Callable[[Any, Path], Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "model.pkl"
    save(LogisticRegression(C=os.system), path)  # type: ignore[arg-type]
    with pytest.raises(UnsafeArtifactError, match=r"posix\.system"):
        load_artifact(path)


# ---------------------------------------------------------------- damaged files


def _real_joblib_bytes() -> bytes:
    buffer = io.BytesIO()
    joblib.dump({"weights": np.arange(1000.0), "names": np.array(["a", "b"], dtype=object)}, buffer)
    return buffer.getvalue()


DAMAGED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"this is not a pickle at all\n", id="text"),
    pytest.param(np.random.RandomState(7).bytes(4096), id="random-bytes"),
    pytest.param(b"\x80\x05\x95", id="truncated-header"),
    pytest.param(pickle.dumps({"a": list(range(100))}, protocol=4)[:-20], id="truncated-pickle"),
    pytest.param(_real_joblib_bytes()[:600], id="truncated-joblib-array"),
    pytest.param(zlib.compress(_real_joblib_bytes())[:-40], id="truncated-zlib"),
    pytest.param(b"\x78\x9cgarbage-after-a-zlib-header", id="zlib-garbage"),
    pytest.param(b"\x04\x22\x4d\x18rest", id="lz4-unsupported"),
    pytest.param(b"ZF0x10\x00", id="joblib-before-0.10"),
]


@pytest.mark.parametrize("content", DAMAGED)
def test_damaged_file_is_a_clear_artifact_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model_broken.pkl"
    path.write_bytes(content)
    with pytest.raises(ArtifactError) as error:
        load_artifact(path)
    assert path.name in error.value.message


def test_missing_file_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read"):
        load_artifact(tmp_path / "absent.pkl")


# ---------------------------------------------------------------- hash and joblib version


def test_hash_mismatch_names_file_expected_and_actual(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(np.arange(3.0)))
    actual, wrong = sha256_file(path), "0" * 64
    with pytest.raises(UnsafeArtifactError) as refused:
        load_artifact(path, expected_sha256=wrong)
    assert all(text in refused.value.message for text in (path.name, wrong, actual))
    np.testing.assert_array_equal(load_artifact(path, expected_sha256=actual.upper()), np.arange(3.0))


def test_old_joblib_is_refused_for_joblib_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "arrays.pkl"
    joblib.dump(np.arange(3.0), path)
    monkeypatch.setattr(safe_load.joblib, "__version__", "1.5.1")
    with pytest.raises(UnsafeArtifactError, match=r"joblib 1\.5\.1 < 1\.6"):
        load_artifact(path)


def test_array_reads_that_disagree_with_the_scan_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "arrays.pkl"
    joblib.dump([np.arange(3.0), np.arange(5)], path)
    scan = safe_load.inspect_stream

    def shifted(*args: Any, **kwargs: Any) -> Any:
        inspection = scan(*args, **kwargs)
        spans = tuple((start + 1, end) for start, end in inspection.array_spans)
        return dataclasses.replace(inspection, array_spans=spans)

    monkeypatch.setattr(safe_load, "inspect_stream", shifted)
    with pytest.raises(UnsafeArtifactError, match="does not match the inspected layout"):
        load_artifact(path)


@pytest.mark.parametrize(("save", "container"), [
    pytest.param(joblib.dump, "joblib", id="joblib-named-pkl"),
    pytest.param(lambda o, p: p.write_bytes(pickle.dumps(o)), "pickle", id="pickle-named-joblib"),
])
def test_container_is_told_by_content_not_name(
    tmp_path: Path, save: Callable[[Any, Path], Any], container: str
) -> None:
    path = tmp_path / ("model.pkl" if container == "joblib" else "model.joblib")
    save({"w": np.arange(4.0)}, path)
    assert inspect_pickle(path).container == container
    np.testing.assert_array_equal(load_artifact(path)["w"], np.arange(4.0))  # type: ignore[index]


# ---------------------------------------------------------------- real and fresh models


def test_real_artifacts_load_and_predict(real_dir: Path, real_csv: Path) -> None:
    import sklearn

    boosters = [load_artifact(real_dir / name) for name in ("model_20250717_214053.pkl", "model_20250717_214252.pkl")]
    assert [b.num_feature() for b in boosters] == [5654, 5654]  # type: ignore[attr-defined]
    if not sklearn.__version__.startswith("1.1."):
        pytest.skip(f"the 1.1.3 preprocessor only transforms under scikit-learn 1.1 (installed {sklearn.__version__})")
    preprocessor = load_artifact(real_dir / "preprocessor_20250717_214053.pkl")
    rows = pd.read_csv(real_csv, nrows=50).drop(columns=["Churn"])
    rows["TotalCharges"] = pd.to_numeric(rows["TotalCharges"], errors="coerce")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown customer IDs are expected
        features = preprocessor.transform(rows)  # type: ignore[attr-defined]
    assert sp.issparse(features) and features.shape == (50, 5654)
    for booster in boosters:
        probabilities = booster.predict(features)  # type: ignore[attr-defined]
        assert probabilities.shape == (50,) and ((probabilities > 0) & (probabilities < 1)).all()


class _NoTell(io.FileIO):
    """A file joblib cannot tell() on, so it writes arrays without alignment padding (joblib <= 1.1 style)."""

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")


def _dump_unaligned(obj: Any, path: Path) -> None:
    with _NoTell(path, "wb") as handle:
        joblib.dump(obj, handle)


SAVERS = [
    pytest.param(joblib.dump, id="joblib"),
    pytest.param(lambda o, p: joblib.dump(o, p, compress=3), id="joblib-zlib-3"),
    pytest.param(lambda o, p: joblib.dump(o, p, compress=("gzip", 3)), id="joblib-gzip"),
    pytest.param(lambda o, p: joblib.dump(o, p, compress=("bz2", 3)), id="joblib-bz2"),
    pytest.param(lambda o, p: joblib.dump(o, p, compress=("xz", 3)), id="joblib-xz"),
    pytest.param(lambda o, p: joblib.dump(o, p, compress=("lzma", 3)), id="joblib-lzma"),
    pytest.param(lambda o, p: joblib.dump(o, p, protocol=2), id="joblib-protocol-2"),
    pytest.param(_dump_unaligned, id="joblib-unaligned"),
    *(pytest.param(functools.partial(lambda proto, o, p: p.write_bytes(pickle.dumps(o, protocol=proto)), proto),
                   id=f"pickle-protocol-{proto}") for proto in (2, 3, 4, 5)),
]


MODEL_NAMES = [
    "logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting",
    "hist_gradient_boosting_regressor", "svc_probability", "knn_kd_tree", "mlp_random_state",
    "pipeline_column_transformer", "column_transformer_pandas_index", "lgbm_classifier", "lgbm_regressor",
    "booster_binary", "booster_multiclass", "booster_regression", "xgb_classifier", "xgb_regressor",
]


@pytest.mark.parametrize("save", SAVERS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fresh_model_loads_and_predicts_identically(
    tmp_path: Path, name: str, save: Callable[[Any, Path], Any],
    fitted_model: Callable[[str], tuple[Any, Any]], model_outputs: Callable[[Any, Any], list[np.ndarray]],
) -> None:
    model, X = fitted_model(name)
    path = tmp_path / "model.pkl"
    save(model, path)
    loaded = load_artifact(path, expected_sha256=sha256_file(path))
    assert type(loaded) is type(model)
    expected, got = model_outputs(model, X), model_outputs(loaded, X)
    assert len(got) == len(expected) > 0
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_array_equal(have, want)


ARRAYS = {
    "float64": np.linspace(0, 1, 17),
    "int32-fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "big-endian": np.arange(5, dtype=">f8"),
    "bool": np.array([True, False, True]),
    "unicode": np.array(["a", "bcd", "é"]),
    "structured": np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4", (2,))]),
    "zero-d": np.array(3.5),
    "empty": np.zeros((0, 4)),
    "object": np.array(["x", 1, None, 2.5], dtype=object),
    "csr": sp.random(20, 30, density=0.1, format="csr", random_state=0),
}


@pytest.mark.parametrize("save", SAVERS[:8])
def test_joblib_arrays_of_every_layout_round_trip(tmp_path: Path, save: Callable[[Any, Path], Any]) -> None:
    path = tmp_path / "arrays.pkl"
    save(ARRAYS, path)
    loaded = load_artifact(path)
    assert isinstance(loaded, dict) and loaded.keys() == ARRAYS.keys()
    for key, want in ARRAYS.items():
        have = loaded[key]
        if sp.issparse(want):
            assert (have != want).nnz == 0
        else:
            assert have.dtype == want.dtype.newbyteorder("=") or have.dtype == want.dtype
            np.testing.assert_array_equal(have, want)


# ---------------------------------------------------------------- the allowlist itself

ALLOWLIST = [
    pytest.param("numpy.core.multiarray", "_reconstruct", True, id="numpy1-spelling"),
    pytest.param("numpy._core.multiarray", "_reconstruct", True, id="numpy2-spelling"),
    pytest.param("numpy", "float64", True, id="numpy-scalar-type"),
    pytest.param("numpy.random._pickle", "__randomstate_ctor", True, id="randomstate-ctor"),
    pytest.param("__builtin__", "slice", True, id="protocol-2-builtin-name"),
    pytest.param("sklearn.tree._tree", "Tree", True, id="sklearn-tree-internals"),
    pytest.param("sklearn.utils", "Bunch", True, id="sklearn-bunch"),
    pytest.param("sklearn.neighbors._kd_tree", "newObj", True, id="sklearn-newobj"),
    pytest.param("scipy.sparse._csr", "csr_matrix", True, id="scipy-csr"),
    pytest.param("pandas.core.indexes.base", "_new_Index", True, id="pandas-index-ctor"),
    pytest.param("lightgbm.basic", "Booster", True, id="lightgbm-booster"),
    pytest.param("joblib.numpy_pickle", "NumpyArrayWrapper", True, id="joblib-wrapper"),
    pytest.param("numpy", "memmap", False, id="numpy-memmap-writes-files"),
    pytest.param("numpy", "load", False, id="numpy-load"),
    pytest.param("numpy.testing._private.utils", "runstring", False, id="numpy-runstring"),
    pytest.param("pandas", "read_pickle", False, id="pandas-read-pickle"),
    pytest.param("scipy.io", "loadmat", False, id="scipy-function"),
    pytest.param("lightgbm.basic", "Dataset", False, id="lightgbm-dataset"),
    pytest.param("joblib", "load", False, id="joblib-load"),
    pytest.param("joblib.numpy_pickle_compat", "NDArrayWrapper", False, id="joblib-0.9-wrapper"),
    pytest.param("copyreg", "_reconstructor", False, id="copyreg-reconstructor"),
    pytest.param("functools", "partial", False, id="functools-partial"),
    pytest.param("builtins", "getattr", False, id="builtins-getattr"),
    pytest.param("builtins", "object", False, id="builtins-object"),
    pytest.param("__builtin__", "eval", False, id="protocol-2-eval"),
    pytest.param("numpy", "ndarray.__new__", False, id="dotted-name"),
    pytest.param("antigravity", "fly", False, id="never-imported"),
]


@pytest.mark.parametrize(("module", "name", "allowed"), ALLOWLIST)
def test_allowlist(module: str, name: str, allowed: bool) -> None:
    assert TRUST.allowlist.is_allowed(module, name) is allowed
    assert "antigravity" not in sys.modules  # names outside the ML stack are refused before any import
