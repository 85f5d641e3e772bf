"""Shared fixtures: bundles copied to temporary directories, and real servers started on them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import DEMO_BUNDLE, ROOT, LiveServer, live_server

pytest_plugins = ["tests.support.fitted", "tests.support.credentials"]

# The prediction store is on by default: every app and server a test starts keeps its embedded
# store (and generated key) in a temporary DATA_DIR, never in the working tree's ./data.
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="modelo-test-data-"))

SHARED = ROOT.parent / "shared"
REAL_MODEL = SHARED / "real-model"
REAL_CSV = SHARED / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"


def require_shared() -> None:
    if not REAL_MODEL.is_dir() or not REAL_CSV.is_file():
        pytest.skip(f"the first user's artifacts are not here ({SHARED} is absent, as on a user's machine)")


def require_default_stack() -> None:
    """The committed default bundle loads only with the library versions it was saved with."""
    import sklearn

    pins = dict(
        line.split("==", 1) for line in (DEMO_BUNDLE / "requirements.txt").read_text().splitlines() if "==" in line
    )
    if sklearn.__version__ != pins.get("scikit-learn"):
        needed = pins.get("scikit-learn")
        pytest.skip(f"the default bundle needs scikit-learn {needed} (this stack has {sklearn.__version__})")


@pytest.fixture(scope="session")
def default_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the committed demo bundle (models/demo/)."""
    require_default_stack()
    target = tmp_path_factory.mktemp("default-bundle")
    for path in DEMO_BUNDLE.iterdir():
        if path.is_file():
            shutil.copy2(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the user's real bundle (read-only input is never touched)."""
    require_shared()
    target = tmp_path_factory.mktemp("real-bundle")
    for path in REAL_MODEL.iterdir():
        shutil.copy(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def real_env_python(real_bundle: Path) -> str:
    """The interpreter of the environment `make run` builds for the real bundle (scikit-learn 1.1.3)."""
    env_dir = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ensure_env.py"), str(real_bundle)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return str(Path(env_dir) / "bin" / "python")


@pytest.fixture(scope="session")
def default_server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(default_bundle, tmp_path_factory.mktemp("default-server")) as server:
        yield server


@pytest.fixture(scope="session")
def real_server(
    real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with live_server(
        real_bundle, tmp_path_factory.mktemp("real-server"), python=real_env_python, id_field="customerID"
    ) as server:
        yield server
