"""What a bundle's environment holds: the service, the bundle's pins, the core libraries and what the pickles need."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pytest

from api.model.environment import plan_environment
from api.model.pins import allows, read_requirements
from tests.conftest import REAL_MODEL, require_default_stack, require_shared
from tests.support.live_server import DEMO_BUNDLE, ROOT

SERVICE = read_requirements(ROOT / "requirements-service.txt")
DEFAULT = read_requirements(ROOT / "requirements.txt")
# The first user's stack: what their requirements.txt pins (minus joblib, the service's own).
USER_STACK = ["lightgbm==3.3.5", "numpy==1.26.4", "pandas==2.1.4", "scikit-learn==1.1.3", "scipy==1.11.4"]


def _bundle(tmp_path: Path, requirements: str | None) -> Path:
    require_shared()
    folder = tmp_path / "bundle"
    folder.mkdir()
    for pickle in REAL_MODEL.glob("*.pkl"):
        shutil.copy(pickle, folder / pickle.name)
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


@pytest.mark.real_bundle
@pytest.mark.parametrize(
    "requirements",
    [
        pytest.param(None, id="bare-pkl-files"),
        pytest.param("scikit-learn==1.1.3\nnumpy<2\n", id="what-the-start-error-suggests"),
        pytest.param("scikit-learn==1.1.3\nnumpy==1.26.4\nlightgbm==3.3.5\n", id="the-readme-example"),
        pytest.param((REAL_MODEL / "requirements.txt").read_text() if REAL_MODEL.is_dir() else "", id="their-own-file"),
        pytest.param("Scikit_Learn == 1.1.3   # saved with\nnumpy<2,>=1.20\n", id="spelled-differently"),
    ],
)
def test_every_way_to_pin_the_real_bundle_gives_one_environment(tmp_path: Path, requirements: str | None) -> None:
    plan = plan_environment(_bundle(tmp_path, requirements))
    assert plan.stack == "bundle"
    assert plan.requirements == [*SERVICE, *USER_STACK], plan.notes
    assert plan.imports == ["numpy", "scipy", "pandas", "sklearn", "lightgbm"]  # pandas: the serving core's
    assert (plan.model_file, plan.demo) == ("model_20250717_214252.pkl", False)


@pytest.mark.real_bundle
def test_service_pins_win_and_the_user_is_told(tmp_path: Path) -> None:
    plan = plan_environment(_bundle(tmp_path, "scikit-learn==1.1.3\nnumpy<2\njoblib==1.2.0\nfastapi==0.100.0\n"))
    assert plan.requirements == [*SERVICE, *USER_STACK]
    notes = " ".join(plan.notes)
    assert "joblib==1.6.0 is used, not joblib==1.2.0" in notes and "fastapi==0.165.0" in notes


@pytest.mark.real_bundle
def test_a_users_own_pin_is_kept(tmp_path: Path) -> None:
    plan = plan_environment(_bundle(tmp_path, "scikit-learn==1.1.3\nnumpy<2\npandas==2.0.3\n"))
    assert "pandas==2.0.3" in plan.requirements and "pandas==2.1.4" not in plan.requirements


def test_the_demo_is_served_by_the_default_stack() -> None:
    plan = plan_environment(DEMO_BUNDLE.parent)
    assert (plan.stack, plan.demo, plan.requirements) == ("default", True, DEFAULT)


def _dumped(tmp_path: Path, model: Any, requirements: str | None = None) -> Path:
    require_default_stack()  # the expectations below are for pickles saved under the default stack
    folder = tmp_path / "bundle"
    folder.mkdir()
    joblib.dump(model, folder / "model_20260101_000000.pkl")
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def test_a_model_saved_with_this_stack_needs_nothing_more(tmp_path: Path, fitted_model: Callable[[str], Any]) -> None:
    model, _ = fitted_model("lgbm_classifier")
    plan = plan_environment(_dumped(tmp_path, model))
    assert plan.stack == "default" and "lightgbm" in plan.imports


def test_lightgbm_format_v4_under_numpy_1_gets_a_lightgbm_4(tmp_path: Path, fitted_model: Callable[[str], Any]) -> None:
    model, _ = fitted_model("booster_binary")
    plan = plan_environment(_dumped(tmp_path, model, "numpy<2\n"))
    assert "lightgbm==4.5.0" in plan.requirements and "numpy==1.26.4" in plan.requirements


def test_xgboost_referenced_by_the_pickle_is_added(tmp_path: Path, fitted_model: Callable[[str], Any]) -> None:
    model, _ = fitted_model("xgb_classifier")
    plan = plan_environment(_dumped(tmp_path, model, "scikit-learn==1.9.1\nnumpy==2.4.6\n"))
    assert "xgboost" in plan.imports
    assert any(line.startswith("xgboost") for line in plan.requirements), plan.requirements


@pytest.mark.parametrize(
    ("spec", "version", "allowed"),
    [
        pytest.param("<2", "1.26.4", True, id="below"),
        pytest.param("<2", "2.0.0", False, id="not-below"),
        pytest.param(">=1.20,<2", "1.26.4", True, id="range"),
        pytest.param("==1.26.*", "1.26.4", True, id="wildcard"),
        pytest.param("==1.26.*", "1.25.0", False, id="wildcard-miss"),
        pytest.param("~=1.26.0", "1.26.4", True, id="compatible"),
        pytest.param("~=1.26.0", "1.27.0", False, id="compatible-miss"),
        pytest.param("!=1.26.4", "1.26.4", False, id="excluded"),
        pytest.param("", "2.4.6", True, id="no-spec"),
    ],
)
def test_specifiers(spec: str, version: str, allowed: bool) -> None:
    assert allows(spec, version) is allowed


def test_wrong_python_is_named_before_any_build(tmp_path: Path) -> None:
    """On another Python the script says 3.11 is required and how to get it, instead of a failed source build."""
    code = (
        "import runpy, sys\n"
        "sys.version_info = (3, 12, 1, 'final', 0)\n"
        f"sys.argv = ['ensure_env.py', {str(DEMO_BUNDLE.parent)!r}]\n"
        f"runpy.run_path({str(ROOT / 'scripts' / 'ensure_env.py')!r}, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and result.stdout == ""
    assert "Python 3.11 is required; this is Python 3.12.1" in result.stderr
    assert "PYTHON=python3.11" in result.stderr and "scikit-learn 1.1.3" in result.stderr
