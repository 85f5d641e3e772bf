"""Several real replicas behind a real HAProxy (Debian's), on loopback ports the test owns.

HAProxy checks every replica with ``GET /ready`` every 250 ms (down after one failure, up after
two successes), so a replica that drains (503) or dies leaves the rotation within a check. For
idempotent predictions it retries a request whose connection failed or whose server closed without
answering (``retry-on conn-failure empty-response response-timeout`` + ``option redispatch``,
the body buffered so it can be replayed): a retried prediction may have run twice, once on a
replica that died before answering; its answer (and prediction_id) is the second one.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.live_server import free_port, start_process, wait_ready

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

CONFIG = """\
global
    maxconn 4000
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    retries 2
    option redispatch
    retry-on conn-failure empty-response response-timeout
    option http-buffer-request

frontend api
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server inter 250ms fastinter 250ms downinter 250ms fall 1 rise 2
{servers}
"""


@dataclass
class Replica:
    """One `python -m api` process with its own port and log; restartable with the same settings."""

    name: str
    env: dict[str, str]
    python: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"{self.name}-{self.starts}.log"
        env = {**self.env, "APP_HOST": "127.0.0.1", "APP_PORT": str(self.port)}
        self.process = start_process(env, log, self.python)
        self._log = log

    def wait_ready(self, timeout: float = 180) -> None:
        assert self.process is not None
        wait_ready(self.url, self.process, self._log, timeout)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self._log.read_text(errors="replace")


@dataclass
class Balancer:
    """A HAProxy process in front of the replicas, with its runtime API on a Unix socket."""

    replicas: list[Replica]
    work_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = self.work_dir / "haproxy.sock"
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in self.replicas)
        config = self.work_dir / "haproxy.cfg"
        config.write_text(CONFIG.format(socket=sock, port=self.port, servers=servers))
        subprocess.run([HAPROXY, "-c", "-q", "-f", str(config)], check=True)
        with (self.work_dir / "haproxy.log").open("wb") as log:
            self.process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not sock.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.work_dir / "haproxy.log").read_text())
            time.sleep(0.02)

    def _command(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.work_dir / "haproxy.sock"))
            sock.sendall(command.encode() + b"\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data.decode()

    def backend_stats(self) -> dict[str, str]:
        """The backend's counters (`show stat`): wretr = retries, wredis = redispatches, ...."""
        lines = self._command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "replicas" and row.get("svname") == "BACKEND":
                return row
        return {}

    def states(self) -> dict[str, str]:
        """Each server's state as HAProxy's runtime API reports it (UP, DOWN, MAINT...)."""
        states = {}
        for line in self._command("show servers state replicas").splitlines():
            parts = line.split()
            if len(parts) > 5 and parts[0].isdigit():
                # be_id be_name srv_id srv_name srv_addr srv_op_state ... (2 = running / UP)
                states[parts[3]] = {"0": "DOWN", "1": "STARTING", "2": "UP", "3": "STOPPING"}.get(parts[5], parts[5])
        return states

    def wait_state(self, name: str, state: str, timeout: float = 60) -> float:
        """Seconds until HAProxy sees the server in that state."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.states().get(name) == state:
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"{name} not {state} after {timeout}s: {self.states()}")

    def wait_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("HAProxy never answered /ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
