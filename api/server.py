"""Run the app under uvicorn with a shutdown a load balancer can follow: drain, finish, exit.

On SIGTERM (what Kubernetes, Cloud Run, Docker and systemd send) the instance first drains:
``/ready`` answers 503 and every answer carries ``Connection: close`` while requests are still
served normally, for ``SHUTDOWN_DRAIN_SECONDS``, so balancers' health checks take it out of
rotation and keep-alive clients reconnect elsewhere. Then uvicorn stops accepting connections,
waits up to ``SHUTDOWN_TIMEOUT_SECONDS`` for the requests in flight, runs the lifespan shutdown
and exits. A second SIGTERM or a SIGINT (Ctrl+C) skips what is left of the drain.

Connections are bounded (``api.http.protocol``): header and body deadlines, caps per process and
per client address, idle keep-alive closed after KEEPALIVE_TIMEOUT_SECONDS; the server's tick
sweeps the deadlines.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from api.config import Settings
from api.http.access import PROBE_PATHS
from api.http.connections import SWEEP_SECONDS, ConnectionGuard, ConnectionLimits, raise_fd_limit
from api.http.protocol import protocol_for
from api.service import Service

log = logging.getLogger("api.server")


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain period between the first SIGTERM and the stop of accepting."""

    def __init__(
        self,
        config: uvicorn.Config,
        service: Service,
        drain_seconds: float,
        guard: ConnectionGuard | None = None,
    ) -> None:
        super().__init__(config)
        self.service = service
        self.drain_seconds = drain_seconds
        self.guard = guard
        self._next_sweep = 0.0
        self._drain_until: float | None = None
        self._drain_announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: set flags only (no locks, no logging); on_tick does the rest on the loop.
        if sig == signal.SIGTERM and self._drain_until is None and not self.should_exit and self.drain_seconds > 0:
            self._drain_until = time.monotonic() + self.drain_seconds
            self.service.draining = True
            getattr(self, "_captured_signals", []).append(sig)  # re-raised after shutdown, as uvicorn does
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None:
            if not self._drain_announced:
                self._drain_announced = True
                self.service.start_draining()
                log.info("draining before shutdown", extra={"drain_seconds": self.drain_seconds})
            if time.monotonic() >= self._drain_until:
                self.should_exit = True
        if self.guard is not None:
            now = asyncio.get_running_loop().time()
            if now >= self._next_sweep:  # uvicorn ticks every 0.1 s
                self._next_sweep = now + SWEEP_SECONDS
                self.guard.sweep(now, self.server_state.connections)
        return await super().on_tick(counter)


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` (built by create_app) until SIGTERM/SIGINT, draining first."""
    service: Service = app.state.service
    guard = ConnectionGuard(ConnectionLimits.from_settings(settings, raise_fd_limit()), service.metrics)
    config = uvicorn.Config(
        app,
        host=settings.app_host,
        port=settings.app_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # configured by create_app, once
        http=protocol_for(guard, PROBE_PATHS),
        ws="none",  # no websocket routes: an Upgrade is an ordinary request
        # Connections the kernel completes while the loop is busy wait here; past it, new SYNs (a
        # probe's too) are dropped and retried after 1 s, 3 s. The kernel caps it at net.core.somaxconn.
        backlog=4096,
        loop="uvloop",
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_seconds)),
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        ssl_ca_certs=str(settings.ssl_ca_certs) if settings.ssl_ca_certs else None,
        ssl_cert_reqs=2 if settings.ssl_ca_certs else 0,
        # uvicorn's default cipher string ("TLSv1") offers CBC-SHA1, anonymous and NULL suites on TLS 1.2.
        ssl_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20",
    )
    DrainingServer(config, service, settings.shutdown_drain_seconds, guard).run()
