"""`python -m api` / `modelo-api`: a real CLI (help, version, flags over environment), a banner on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from api import __version__
from tests.support.live_server import DEMO_BUNDLE, ROOT, free_port, stop_process, wait_ready

KEY = "cli-test-key-0123456789abcdef"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "JWT_", "MODEL_", "LOG_", "APP_"))}
    return {**env, "PYTHONPATH": str(ROOT), "API_KEYS": f"cli:{KEY}", **extra}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import require_default_stack

    require_default_stack()
    target = tmp_path_factory.mktemp("cli-bundle")
    shutil.copytree(DEMO_BUNDLE, target / "demo")
    return target


def test_help_explains_and_does_not_serve() -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "api", "--help"], env=_env(), capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    for text in ("usage: modelo-api", "--host", "--port", "--model-dir", "--version", "MODEL_DIR", "LOG_FORMAT"):
        assert text in result.stdout
    assert "Started server" not in result.stdout + result.stderr


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "api", "--version"], env=_env(), capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.strip() == f"modelo-api {__version__}"


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        pytest.param(["--port", "70000"], {}, "APP_PORT", id="port-out-of-range"),
        pytest.param([], {"LOG_LEVEL": "loud"}, "LOG_LEVEL", id="unknown-level"),
        pytest.param([], {"LOG_FORMAT": "xml"}, "LOG_FORMAT", id="unknown-format"),
    ],
)
def test_bad_settings_are_named_without_a_traceback(argv: list[str], env: dict[str, str], named: str) -> None:
    result = subprocess.run([sys.executable, "-m", "api", *argv], env=_env(**env), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "invalid setting" in result.stderr and named in result.stderr
    assert "Traceback" not in result.stderr


def test_flags_win_over_the_environment(demo: Path, tmp_path: Path) -> None:
    env_port, flag_port = free_port(), free_port()
    env = _env(APP_PORT=str(env_port), MODEL_DIR=str(tmp_path / "nowhere"), LOG_LEVEL="ERROR", APP_HOST="0.0.0.0")
    log = tmp_path / "flags.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "api", "--port", str(flag_port), "--model-dir", str(demo), "--host", "127.0.0.1",
             "--log-level", "Warning", "--log-format", "json"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"http://127.0.0.1:{flag_port}", process, log)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{env_port}/health", timeout=2)
        described = httpx.get(f"http://127.0.0.1:{flag_port}/model", headers={"X-API-Key": KEY}, timeout=30).json()
        assert described["demo"] is True
    finally:
        stop_process(process)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records and {r["log.level"] for r in records} <= {"warning", "error"}  # the flag's level, not ERROR


def _read_terminal(master: int, until: str, timeout: float) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and until.encode() not in seen:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


@pytest.mark.parametrize("log_format", [pytest.param(None, id="auto-on-a-terminal"), pytest.param("json", id="json")])
def test_terminal_banner(demo: Path, log_format: str | None) -> None:
    """On a terminal: human lines and a banner with the URL, the docs, the key and the model; JSON when asked."""
    port = free_port()
    master, slave = pty.openpty()
    env = _env(MODEL_DIR=str(demo), APP_HOST="127.0.0.1", APP_PORT=str(port), **({"LOG_FORMAT": log_format} if
                                                                                    log_format else {}))
    process = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, Path(os.devnull))
        text = _read_terminal(master, "Application startup complete", 30)
    finally:
        stop_process(process)
        os.close(master)
    if log_format == "json":
        assert "Stop with Ctrl+C" not in text
        assert all(json.loads(line) for line in text.splitlines() if line.strip())
        return
    url = f"http://127.0.0.1:{port}"
    for expected in ("is serving model 20261126_000000", f"URL       {url}", f"Docs      {url}/docs",
                     "API key   yours, from API_KEYS", "DEMO bundle", "Stop with Ctrl+C."):
        assert expected in text, text
    assert "model ready" in text and "model_version=20261126_000000" in text  # console lines, extra fields shown
    assert '"log.level"' not in text


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["-m", "uvicorn", "--factory", "api.main:create_app"], id="uvicorn-factory"),
        pytest.param(["-m", "uvicorn", "api.main:app"], id="uvicorn-app-as-the-seed-runs-it"),
    ],
)
def test_uvicorn_entry_points_still_work(demo: Path, tmp_path: Path, command: list[str]) -> None:
    port = free_port()
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, *command, "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                                   env=_env(MODEL_DIR=str(demo), LOG_LEVEL="warning"), stdout=sink,
                                   stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        answer = httpx.get(f"http://127.0.0.1:{port}/model", headers={"X-API-Key": KEY}, timeout=30)
        assert answer.status_code == 200 and answer.json()["model_version"] == "20261126_000000"
    finally:
        stop_process(process)


def test_a_python_without_the_libraries_is_told_what_is_missing(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    python = str(bare / "bin" / "python")
    version = subprocess.run([python, "-m", "api", "--version"], env=_env(), capture_output=True, text=True,
                             timeout=30, check=True)
    assert version.stdout.strip() == f"modelo-api {__version__}"  # nothing but the standard library needed
    result = subprocess.run([python, "-m", "api"], env=_env(), capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 2
    assert "lacks a library the service needs" in result.stderr and "make run" in result.stderr
    assert "Traceback" not in result.stderr
