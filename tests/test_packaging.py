"""`pip install .` works: a wheel with the service only, its console script, and dependencies that match the pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from api import __version__
from tests.support.live_server import DEMO_BUNDLE, ROOT, free_port, stop_process, wait_ready

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def test_declared_dependencies_admit_the_tested_pins() -> None:
    """Every dependency range holds the version requirements*.txt pin (the ones the suite runs)."""
    pins = {**_pins(ROOT / "requirements-service.txt"), **_pins(ROOT / "requirements.txt")}
    declared = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    assert {r.name.lower() for r in declared} >= set(_pins(ROOT / "requirements-service.txt"))
    for requirement in declared:
        tested = pins[requirement.name.lower()]
        assert requirement.specifier.contains(tested), (requirement, tested)


def test_metadata() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["scripts"] == {"modelo-api": "api.cli:main", "modelo-score": "api.score:main"}
    assert project["readme"] == "README.md" and project["requires-python"] == ">=3.11,<3.12"
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_serves(tmp_path: Path) -> None:
    """Build from a copy (so the worktree stays clean), install with the tested pins, run `modelo-api`."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "api", source / "api", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("modelo_ml_api-*.whl")
    assert wheel.name == f"modelo_ml_api-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"api", f"modelo_ml_api-{__version__}.dist-info"}
    assert "api/py.typed" in names and f"modelo_ml_api-{__version__}.dist-info/licenses/LICENSE" in names

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    f"{wheel}[lightgbm]", "-c", str(ROOT / "requirements.txt")], check=True, timeout=900)
    command = str(env / "bin" / "modelo-api")
    version = subprocess.run([command, "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert version.stdout.strip() == f"modelo-api {__version__}"

    models = tmp_path / "models"
    shutil.copytree(DEMO_BUNDLE, models / "demo")
    port = free_port()
    log = tmp_path / "installed.log"
    with log.open("wb") as sink:
        # Outside the repository, so the installed package (not the source tree) is what runs.
        process = subprocess.Popen([command, "--model-dir", str(models), "--host", "127.0.0.1", "--port", str(port)],
                                   cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "AUTH_DISABLED": "true"},
                                   stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
    finally:
        stop_process(process)
