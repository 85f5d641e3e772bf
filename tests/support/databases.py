"""Databases of the tests' own: a PostgreSQL database per test on the machine's server, and a TCP proxy to cut it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

PG_SERVER = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]


def postgres_available() -> bool:
    if shutil.which("createdb") is None:
        return False
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def postgres_database(prefix: str = "modelo_test") -> Iterator[str]:
    """A fresh database (dropped afterwards); its postgresql:// URL."""
    if not postgres_available():
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 (CI machines have one)")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    subprocess.run(["createdb", *PG_SERVER, name], check=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run(["dropdb", *PG_SERVER, "--force", name], check=True)


def psql(database_url: str, sql: str) -> str:
    """Run SQL through psql (a client of its own, as an operator would look at the table)."""
    name = database_url.rsplit("/", 1)[1]
    return subprocess.run(
        ["psql", *PG_SERVER, "-d", name, "-At", "-c", sql], check=True, capture_output=True, text=True
    ).stdout


class TcpProxy:
    """Forwards a loopback port to a target; ``stop`` closes the listener and every connection (an outage)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            listener.close()
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for side in (source, target):
            with suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)
