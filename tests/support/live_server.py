"""A real uvicorn process on a free loopback port, as production runs it (`python -m api`)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
# The committed demo bundle (synthetic data): served only when MODEL_DIR holds no model of its own.
DEMO_BUNDLE = ROOT / "models" / "demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running service: its URL, an authenticated client, and its captured log."""

    url: str
    api_key: str
    process: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, headers={"X-API-Key": self.api_key}, timeout=60)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def alive(self) -> bool:
        return self.process.poll() is None


def start_process(env: dict[str, str], log_path: Path, python: str | None = None) -> subprocess.Popen[bytes]:
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("API_", "JWT_", "MODEL_"))}, **env}
    full_env["PYTHONPATH"] = str(ROOT)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [python or sys.executable, "-m", "api"], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 120, verify: object = True
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=2, verify=verify).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log_path.read_text()[-4000:]}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask the server to shut down, and make sure it is gone."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def live_server(
    model_dir: Path, tmp_dir: Path, *, python: str | None = None, timeout: float = 180, **settings: str
) -> Iterator[LiveServer]:
    """Start `python -m api` on MODEL_DIR with settings as environment variables; stop it afterwards."""
    port = free_port()
    api_key = secrets.token_urlsafe(24)
    env = {"MODEL_DIR": str(model_dir), "APP_HOST": "127.0.0.1", "APP_PORT": str(port), "API_KEYS": f"tests:{api_key}"}
    # Its own prediction store unless told otherwise: labels and predictions of other tests' servers
    # would otherwise count in this one's live accuracy.
    env["DATA_DIR"] = str(tmp_dir / f"data-{port}")
    env.update({k.upper(): v for k, v in settings.items()})
    log_path = tmp_dir / f"server-{port}.log"
    process = start_process(env, log_path, python)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log_path, timeout)
        server = LiveServer(url=url, api_key=api_key, process=process, log_path=log_path)
        yield server
        server.client.close()
    finally:
        stop_process(process)
