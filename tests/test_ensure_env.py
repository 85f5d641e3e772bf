"""scripts/ensure_env.py: pip's output summarised with elapsed time, built once, a clear message when pip fails."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.live_server import ROOT


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ensure_env", ROOT / "scripts" / "ensure_env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ensure_env = _script()


@pytest.mark.parametrize(
    ("line", "status"),
    [
        pytest.param("Collecting scikit-learn==1.1.3", "resolving, 1 packages so far (scikit-learn==1.1.3)",
                     id="collect"),
        pytest.param("  Downloading scipy-1.11.4-cp311-cp311-manylinux.whl (36.4 MB)",
                     "downloading scipy-1.11.4-cp311-cp311-manylinux.whl 36.4 MB", id="download"),
        pytest.param("Installing collected packages: numpy, scipy, pandas",
                     "installing 3 packages (unpacking numpy/scipy/scikit-learn takes a while)", id="install"),
        pytest.param("  Using cached numpy-1.26.4.whl.metadata", None, id="noise-kept-quiet"),
    ],
)
def test_pip_lines_are_summarised(line: str, status: str | None) -> None:
    state: dict[str, Any] = {"collected": 0, "installing": 0, "installed": 0}
    assert ensure_env._summarise(line, state) == status


def test_progress_without_a_terminal_prints_a_line_every_few_seconds() -> None:
    stream = io.StringIO()
    progress = ensure_env.Progress("serve-abc", stream)
    progress.update("resolving, 1 packages so far")
    progress.update("resolving, 2 packages so far")  # within 5 s: not printed again
    progress.finish("42 packages installed")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "  serve-abc: resolving, 1 packages so far [0 s]"
    assert lines[1] == "  serve-abc: 42 packages installed in 0 s"
    assert len(lines) == 2


@pytest.mark.slow
def test_an_environment_is_built_once_then_reused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "probe-env"
    assert ensure_env.build(env, ["six==1.17.0"], label="a probe") == env
    first = capsys.readouterr().err
    assert "creating probe-env (a probe)" in first and "probe-env: 1 packages installed in" in first
    assert (env / "requirements.lock.txt").read_text() == "six==1.17.0\n"
    ensure_env.build(env, ["six==1.17.0"], label="a probe")
    assert capsys.readouterr().err == ""  # the stamp matches: no pip, no output


@pytest.mark.slow
def test_a_failing_pip_shows_its_last_lines(tmp_path: Path) -> None:
    with pytest.raises(ensure_env.EnvError) as failed:
        ensure_env.build(tmp_path / "broken-env", ["modelo-no-such-package-xyz==0.0.1"], label="broken")
    assert "pip could not build the environment" in str(failed.value)
    assert "modelo-no-such-package-xyz" in str(failed.value)
    assert not (tmp_path / "broken-env" / ".requirements.sha256").exists()


def test_the_serving_plan_has_no_dev_tools() -> None:
    dev = {line.split("==")[0].lower() for line in ensure_env._lines(ROOT / "requirements-dev.txt")}
    serving = {line.split("==")[0].lower() for line in ensure_env._lines(ROOT / "requirements.txt")}
    assert dev and not dev & serving, dev & serving
    assert sys.version_info[:2] == ensure_env.REQUIRED_PYTHON
