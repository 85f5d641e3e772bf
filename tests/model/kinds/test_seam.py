"""The model-kind seam: the registry finds a model's kind, a kind brings its own allowlist entries,
and adding one touches no other module."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from api.bundle import allowlist
from api.bundle.allowlist import Allowlist, Entries
from api.errors import ArtifactError, UnsafeArtifactError
from api.model.kinds import builtin_kinds, kinds_from, recognise, trust_for
from api.model.kinds.sklearn import split_pipeline
from api.model.loader import load_bundle
from tests.support.live_server import live_server
from tests.support.own_kind import MajorityClassifier, Scorecard

VERSION = "20240101_120000"
NAMES = ["usage", "seats", "tenure"]


def _data(rows: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(5)
    features = rng.normal(size=(rows, len(NAMES)))
    return features, (features[:, 0] + 0.3 * rng.normal(size=rows) > 0).astype(int)


def _bundle(directory: Path, model: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"model_{VERSION}.pkl").write_bytes(pickle.dumps(model, protocol=5))
    return directory


def _records(features: np.ndarray, names: list[str]) -> list[dict[str, float]]:
    return [dict(zip(names, map(float, row), strict=True)) for row in features]


# ---------------------------------------------------------------- the registry


def test_builtin_kinds_are_the_modules_of_the_package_with_the_catch_all_last() -> None:
    assert [kind.name for kind in builtin_kinds()] == ["lightgbm", "xgboost", "sklearn"]
    assert [kind.fallback for kind in builtin_kinds()] == [False, False, True]


def _models() -> list[Any]:
    features, labels = _data()
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(features, labels), num_boost_round=3)
    return [
        pytest.param(booster, "lightgbm", id="raw-booster"),
        pytest.param(
            lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(features, labels), "lightgbm", id="lgbm-wrapper"
        ),
        pytest.param(LogisticRegression().fit(features, labels), "sklearn", id="sklearn-estimator"),
        pytest.param(
            split_pipeline(None, make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels))[1],
            "sklearn",
            id="pipeline-final-step",
        ),
    ]


@pytest.mark.parametrize(("model", "kind"), _models())
def test_each_model_is_recognised_by_its_kind(model: Any, kind: str) -> None:
    found = recognise(model, builtin_kinds())
    assert found is not None and found.name == kind


def test_xgboost_wrappers_are_their_own_kind() -> None:
    xgb = pytest.importorskip("xgboost", reason="xgboost is not installed in this stack")
    features, labels = _data()
    found = recognise(xgb.XGBClassifier(n_estimators=2).fit(features, labels), builtin_kinds())
    assert found is not None and found.name == "xgboost"


def test_an_object_without_predict_is_no_kind() -> None:
    assert recognise(np.arange(3.0), builtin_kinds()) is None


def test_the_base_allowlist_admits_arrays_but_no_ml_library() -> None:
    """scikit-learn, LightGBM and XGBoost are admitted only through their kinds' entries."""
    base, served = Allowlist(), trust_for(builtin_kinds()).allowlist
    for module, name in [("sklearn.linear_model._logistic", "LogisticRegression"), ("lightgbm.basic", "Booster")]:
        assert not base.is_allowed(module, name)
        assert served.is_allowed(module, name)
    assert base.is_allowed("numpy", "ndarray") and base.is_allowed("scipy.sparse._csr", "csr_matrix")


def test_a_package_allowed_by_exact_names_has_no_other_module_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    imported: list[str] = []
    real = importlib.import_module

    def spy(name: str) -> object:
        imported.append(name)
        return real(name)

    monkeypatch.setattr(allowlist.importlib, "import_module", spy)
    names_only = Allowlist([Entries("tests", names=frozenset({("tests.support.own_kind", "Scorecard")}))])
    assert names_only.is_allowed("tests.support.own_kind", "Scorecard")
    assert not names_only.is_allowed("tests.support.own_kind", "MajorityClassifier")
    assert not names_only.is_allowed("tests.support.live_server", "start_process")
    assert imported == ["tests.support.own_kind"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("tests.support.no_such_module", "cannot be imported", id="missing-module"),
        pytest.param("tests.support.own_kind:Scorecard", "not a ModelKind", id="not-a-kind"),
        pytest.param("tests.support.live_server", "not a ModelKind", id="module-without-KIND"),
    ],
)
def test_a_wrong_model_kinds_entry_is_a_clear_artifact_error(name: str, error: str) -> None:
    with pytest.raises(ArtifactError, match=error):
        kinds_from([name])


def test_kinds_of_your_own_are_asked_before_the_builtins() -> None:
    for spelling in ("tests.support.own_kind", "tests.support.own_kind:KIND", "tests.support.own_kind:ScorecardKind"):
        assert [kind.name for kind in kinds_from([spelling])] == ["scorecard", "lightgbm", "xgboost", "sklearn"]


# ---------------------------------------------------------------- a kind of your own


def test_a_kind_of_your_own_is_refused_until_named(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "bundle", Scorecard(NAMES, [1.5, -0.25, 0.5], -0.1))
    with pytest.raises(UnsafeArtifactError, match=r"tests\.support\.own_kind\.Scorecard"):
        load_bundle(bundle)
    loaded = load_bundle(bundle, model_kinds=["tests.support.own_kind"])
    assert loaded.describe()["model_kind"] == "scorecard"
    assert [c.name for c in loaded.schema.columns] == NAMES


def test_a_kind_of_your_own_is_served_exactly(tmp_path: Path) -> None:
    """The kind lives in a module of its own (tests/support/own_kind.py): nothing else in the service changes."""
    features, _ = _data(40)
    card = Scorecard(NAMES, [1.5, -0.25, 0.5], -0.1)
    bundle = _bundle(tmp_path / "bundle", card)
    positive = 1.0 / (1.0 + np.exp(-card.margins(features)))
    with live_server(bundle, tmp_path, model_kinds="tests.support.own_kind") as server:
        described = server.client.get("/model").json()
        response = server.client.post("/predict", json={"instances": _records(features, NAMES)})
    assert described["model_kind"] == "scorecard" and described["classes"] == ["no", "yes"]
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [r["probabilities"]["yes"] for r in rows] == positive.tolist()
    assert [r["prediction"] for r in rows] == ["yes" if p >= 0.5 else "no" for p in positive]


# ---------------------------------------------------------------- EXTRA_ALLOWED_GLOBALS


def test_a_class_of_your_own_with_the_sklearn_api_needs_only_its_name(tmp_path: Path) -> None:
    features, labels = _data()
    model = MajorityClassifier().fit(features, labels)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    joblib.dump(model, bundle / f"model_{VERSION}.pkl")
    with pytest.raises(UnsafeArtifactError, match="EXTRA_ALLOWED_GLOBALS"):
        load_bundle(bundle)
    loaded = load_bundle(bundle, extra_globals=["tests.support.own_kind.MajorityClassifier"])
    assert loaded.predictor.kind == "sklearn" and loaded.predictor.task == "binary"
    validated = loaded.validator.validate(_records(features[:5], [c.name for c in loaded.schema.columns]))
    output = loaded.predictor.run(validated.columns, validated.size)
    assert np.array_equal(output.probabilities, model.predict_proba(features[:5]))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("os.system", id="stdlib"),
        pytest.param("builtins.eval", id="builtins"),
        pytest.param("numpy.load", id="vetted-library-function"),
        pytest.param("sklearn.utils._testing.assert_run_python_script", id="kind-library-function"),
        pytest.param("nodots", id="not-a-dotted-name"),
    ],
)
def test_extra_allowed_globals_refuse_what_is_not_your_own_code(name: str) -> None:
    with pytest.raises(UnsafeArtifactError, match="EXTRA_ALLOWED_GLOBALS"):
        trust_for(builtin_kinds(), [name])
