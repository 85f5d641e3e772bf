"""check_compatibility: recorded versions against installed ones, refused with the fix or allowed with warnings."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import pytest

from api.bundle import compat
from api.bundle.pickle_scan import PickleInspection, inspect_pickle
from api.errors import IncompatibleArtifactError
from api.model.kinds import builtin_kinds, trust_for

# The rules the service checks with: the base plus every built-in model kind's library.
TRUST = trust_for(builtin_kinds())

CURRENT = {"sklearn": "1.9.1", "numpy": "2.4.6", "lightgbm": "4.7.0", "xgboost": "3.2.0", "python": "3.11.7"}
OLD = {"sklearn": "1.1.3", "numpy": "1.26.4", "lightgbm": "3.3.5", "python": "3.11.7"}
SKLEARN_GLOBALS = frozenset({("sklearn.compose._column_transformer", "ColumnTransformer"),
                             ("sklearn.preprocessing._encoders", "OneHotEncoder")})


# What each library's recorder writes, by the label it records under.
_LABELS = {
    "sklearn_versions": "sklearn", "lightgbm_model_format": "lightgbm_model_format", "xgboost_version": "xgboost",
}


def _inspection(name: str = "preprocessor_20250717_214053.pkl", **recorded: Any) -> PickleInspection:
    fields: dict[str, Any] = {"container": "pickle", "compression": None, "protocol": 4, "globals": frozenset(),
                              "numpy_namespace": None, "recorded": {}}
    for key, value in recorded.items():
        if key in _LABELS:
            fields["recorded"][_LABELS[key]] = frozenset({value} if isinstance(value, str) else value)
        else:
            fields[key] = value
    return PickleInspection(path=Path("/srv/models/churn") / name, **fields)


def check_compatibility(inspections: list[PickleInspection], installed: dict[str, str] | None = None) -> list[str]:
    return compat.check_compatibility(inspections, TRUST, installed)


def installed_versions() -> dict[str, str]:
    return compat.installed_versions(TRUST)


CASES = [
    pytest.param({"sklearn_versions": frozenset({"1.1.3"}), "globals": SKLEARN_GLOBALS}, CURRENT, "refuse",
                 ["scikit-learn 1.1.3", "installed 1.9.1", "changed in 1.2", "ColumnTransformer/OneHotEncoder",
                  "requirements.txt with scikit-learn==1.1.3 numpy<2", "MODEL_DIR=/srv/models/churn make run",
                  "--build-arg BUNDLE_REQUIREMENTS="], id="sklearn-1.1.3-under-1.9.1"),
    pytest.param({"sklearn_versions": frozenset({"1.10.0"})}, CURRENT, "refuse",
                 ["scikit-learn 1.10.0", "scikit-learn==1.10.0"], id="sklearn-newer-minor"),
    pytest.param({"sklearn_versions": frozenset({"1.5.2"})}, CURRENT, "refuse",
                 ["scikit-learn==1.5.2"], id="sklearn-older-minor-numpy2-capable"),
    pytest.param({"sklearn_versions": frozenset({"1.9.0"})}, CURRENT, "warn",
                 ["scikit-learn 1.9.0", "served with 1.9.1"], id="sklearn-same-minor-other-patch"),
    pytest.param({"sklearn_versions": frozenset({"1.9.1"})}, CURRENT, "ok", [], id="sklearn-identical"),
    pytest.param({"sklearn_versions": frozenset({"1.1.3"})}, OLD, "ok", [], id="sklearn-1.1.3-under-1.1.3"),
    pytest.param({"numpy_namespace": "numpy._core"}, OLD, "refuse",
                 ["numpy 2", "numpy 1.26.4", "numpy>=2"], id="numpy2-pickle-under-numpy1"),
    pytest.param({"numpy_namespace": "numpy.core"}, CURRENT, "ok", [], id="numpy1-pickle-under-numpy2"),
    pytest.param({"numpy_namespace": "numpy._core"}, CURRENT, "ok", [], id="numpy2-pickle-under-numpy2"),
    pytest.param({"lightgbm_model_format": "v4"}, OLD, "refuse",
                 ["format v4", "lightgbm 3.3.5", "lightgbm>=4"], id="lightgbm-v4-under-3.x"),
    pytest.param({"lightgbm_model_format": "v3"}, CURRENT, "ok", [], id="lightgbm-v3-under-4.x"),
    pytest.param({"lightgbm_model_format": "v3"}, OLD, "ok", [], id="lightgbm-v3-under-3.x"),
    pytest.param({"lightgbm_model_format": "v3", "globals": frozenset({("lightgbm.basic", "Booster")})},
                 {"sklearn": "1.9.1", "numpy": "2.4.6"}, "refuse", ["needs lightgbm"], id="lightgbm-not-installed"),
    pytest.param({"xgboost_version": "3.2.0"}, {**CURRENT, "xgboost": "2.1.4"}, "refuse",
                 ["xgboost 3.2.0", "2.1.4", "xgboost==3.2.0"], id="xgboost-newer-than-installed"),
    pytest.param({"xgboost_version": "2.1.4"}, CURRENT, "warn", ["xgboost 2.1.4", "served with 3.2.0"],
                 id="xgboost-older-than-installed"),
    pytest.param({"xgboost_version": "3.2.0"}, CURRENT, "ok", [], id="xgboost-identical"),
]


@pytest.mark.parametrize(("recorded", "installed", "outcome", "phrases"), CASES)
def test_recorded_versions_against_installed(
    recorded: dict[str, Any], installed: dict[str, str], outcome: str, phrases: list[str]
) -> None:
    inspection = _inspection(**recorded)
    if outcome == "refuse":
        with pytest.raises(IncompatibleArtifactError) as refused:
            check_compatibility([inspection], installed)
        text = refused.value.message
        assert inspection.path.name in text
    else:
        warnings = check_compatibility([inspection], installed)
        assert len(warnings) == (outcome == "warn")
        text = " ".join(warnings)
    for phrase in phrases:
        assert phrase in text


def test_every_problem_of_a_bundle_is_reported_at_once() -> None:
    bundle = [
        _inspection(sklearn_versions=frozenset({"1.1.3"})),
        _inspection("model_20250717_214053.pkl", lightgbm_model_format="v4", numpy_namespace="numpy._core"),
    ]
    with pytest.raises(IncompatibleArtifactError) as refused:
        check_compatibility(bundle, OLD | {"sklearn": "1.2.2"})
    text = refused.value.message
    assert "preprocessor_20250717_214053.pkl" in text and "model_20250717_214053.pkl" in text
    # 1.1.3 needs numpy < 2 while the model was pickled under numpy 2: no environment serves both.
    assert "No single environment fits (scikit-learn==1.1.3 numpy<2 numpy>=2 lightgbm>=4)" in text


def test_pins_of_several_files_are_merged_into_one_fix() -> None:
    bundle = [
        _inspection(sklearn_versions=frozenset({"1.1.3"})),
        _inspection("model_20250717_214053.pkl", lightgbm_model_format="v4"),
    ]
    with pytest.raises(IncompatibleArtifactError, match=r"with scikit-learn==1\.1\.3 numpy<2 lightgbm>=4 beside"):
        check_compatibility(bundle, OLD | {"sklearn": "1.2.2"})


def test_installed_versions_name_the_stack() -> None:
    import joblib
    import numpy
    import sklearn

    versions = installed_versions()
    assert versions["sklearn"] == sklearn.__version__ and versions["numpy"] == numpy.__version__
    assert versions["joblib"] == joblib.__version__ and versions["python"] == platform.python_version()
    assert {"scipy", "pandas", "lightgbm"} <= versions.keys()
    try:
        import xgboost
    except ImportError:
        assert "xgboost" not in versions
    else:
        assert versions["xgboost"] == xgboost.__version__


def test_real_bundle_against_this_stack(real_dir: Path) -> None:
    import sklearn

    inspections = [inspect_pickle(path, TRUST.recorders) for path in sorted(real_dir.iterdir())]
    if sklearn.__version__.startswith("1.1."):
        assert check_compatibility(inspections) == []
        return
    with pytest.raises(IncompatibleArtifactError) as refused:
        check_compatibility(inspections)
    text = refused.value.message
    assert f"installed {sklearn.__version__}" in text and "scikit-learn==1.1.3 numpy<2" in text
    assert f"MODEL_DIR={real_dir} make run" in text and "model_20250717" not in text
