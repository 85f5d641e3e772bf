"""How many connections a process holds, from whom, and for how long: the caps, the deadlines, the log.

The HTTP protocol (``api.http.protocol``) asks :class:`ConnectionGuard` whether to serve each new
connection and tells it when the connection ends. A connection is *served* while this process
serves fewer than ``MAX_CONNECTIONS`` and its address fewer than ``MAX_CONNECTIONS_PER_CLIENT``
(addresses of trusted proxies excepted); otherwise it is *refused*: its request is answered 503
``too_many_connections`` (``/health`` and ``/ready`` still answer, so an orchestrator's probe
gets through an attack from elsewhere) and it is closed. Refused connections still hold a file
descriptor for a moment, so beyond ``fd_ceiling`` a connection is dropped at once.

Deadlines are checked by one sweep every quarter of a second (:meth:`sweep`) instead of a timer per
request: arming and cancelling timers on every request costs more than the check.
"""

from __future__ import annotations

import ipaddress
import logging
import resource
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from api.config import Settings
from api.observability.metrics import ServiceMetrics

log = logging.getLogger("api.connections")

# File descriptors kept free for everything else: model files, threads, database and Redis pools, logs.
FD_RESERVE: Final = 128
# A refused connection only has to say which path it wants (a probe still gets an answer).
REFUSED_HEADER_SECONDS: Final = 2.0
# After a body timeout, how long the app gets to answer 408 before the connection is dropped.
CLOSE_GRACE_SECONDS: Final = 5.0
# At most one log line per kind of event in this period (each line says how many happened).
LOG_EVERY_SECONDS: Final = 10.0
SWEEP_SECONDS: Final = 0.25
# Most connections one sweep ends: thousands expiring together (an attacker opens them together) are
# ended over a few ticks, so neither the closing nor the attacker's reconnecting stalls the loop.
MAX_CUTS_PER_SWEEP: Final = 500


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The connection settings, with the process cap fitted under the file-descriptor limit."""

    header_timeout: float
    body_timeout: float
    max_connections: int
    max_per_client: int
    fd_ceiling: int
    trusted: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings, fd_limit: int) -> ConnectionLimits:
        ceiling = max(64, fd_limit - FD_RESERVE)
        # A quarter of the ceiling stays for refused connections on their way to a 503, and for probes.
        fitted = min(settings.max_connections, ceiling * 3 // 4)
        if fitted < settings.max_connections:
            log.warning(
                "MAX_CONNECTIONS lowered to fit the file-descriptor limit",
                extra={"max_connections": fitted, "configured": settings.max_connections, "fd_limit": fd_limit},
            )
        trusted = tuple(part.strip() for part in settings.forwarded_allow_ips.split(",") if part.strip())
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=fitted,
            max_per_client=settings.max_connections_per_client,
            fd_ceiling=ceiling,
            trusted=trusted,
        )


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a process may, unprivileged); the resulting soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the file-descriptor limit", extra={"soft": soft, "hard": hard})
    return soft


@lru_cache(maxsize=1)
def _networks(trusted: tuple[str, ...]) -> tuple[bool, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]:
    networks = []
    for entry in trusted:
        if entry == "*":
            return True, ()
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a unix socket name or a host name: never a TCP peer address here
    return False, tuple(networks)


@lru_cache(maxsize=4096)  # asked for every connection over the per-client cap: an attacker's, mostly
def is_trusted(host: str, trusted: tuple[str, ...]) -> bool:
    """True when ``host`` is one of the FORWARDED_ALLOW_IPS addresses or networks (or that is `*`)."""
    anything, networks = _networks(trusted)
    if anything:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


class ConnectionGuard:
    """Counts open connections per process and per client address, refuses over the caps, sweeps deadlines."""

    def __init__(self, limits: ConnectionLimits, metrics: ServiceMetrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open = 0
        self.served = 0
        self.per_client: dict[str, int] = {}
        # Read when scraped: an inc/dec per connection costs more than the rest of admission.
        metrics.connections_open.set_function(lambda: self.open)
        self._events: Counter[str] = Counter()
        self._last_host: dict[str, str] = {}
        self._logged_at: dict[str, float] = {}

    def admit(self, host: str) -> str | None:
        """Register a new connection: None when it is served, else why it is refused.

        ``fd_limit`` means: drop it now, without reading or answering.
        """
        self.open += 1
        limits = self.limits
        if self.open > limits.fd_ceiling:
            return self.refused("fd_limit", host)
        count = self.per_client.get(host, 0)
        if count >= limits.max_per_client and not is_trusted(host, limits.trusted):
            return self.refused("client_cap", host)
        if self.served >= limits.max_connections:
            return self.refused("process_cap", host)
        self.per_client[host] = count + 1
        self.served += 1
        return None

    def release(self, host: str, served: bool) -> None:
        """Forget a closed connection."""
        self.open -= 1
        if served:
            self.served -= 1
            left = self.per_client.get(host, 1) - 1
            if left > 0:
                self.per_client[host] = left
            else:
                self.per_client.pop(host, None)

    def refused(self, reason: str, host: str) -> str:
        self.metrics.connection_refused(reason)
        self.note(f"refused:{reason}", host)
        return reason

    def cut(self, reason: str, host: str) -> None:
        """Count (and log, rate-limited) a connection cut for slowness."""
        self.metrics.connection_cut(reason)
        self.note(f"cut:{reason}", host)

    def note(self, event: str, host: str) -> None:
        """Log an event at most once per LOG_EVERY_SECONDS, with how many happened since the last line."""
        self._events[event] += 1
        self._last_host[event] = host
        now = time.monotonic()
        if now - self._logged_at.get(event, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            self._flush(event, now)

    def _flush(self, event: str, now: float) -> None:
        action, reason = event.split(":", 1)
        count = self._events.pop(event, 0)
        self._logged_at[event] = now
        if count:
            log.warning(
                "connections %s (%s): %d since the last report",
                action,
                reason,
                count,
                extra={
                    "event": event,
                    "count": count,
                    "client_address": self._last_host.get(event),
                    "open_connections": self.open,
                    "served_connections": self.served,
                },
            )

    def sweep(self, now: float, connections: Iterable[object]) -> None:
        """Cut the connections past their deadline (uvicorn's set of them); report events still unreported."""
        cuts = 0
        for connection in list(connections):
            check = getattr(connection, "check_deadline", None)  # every connection is ours (no websockets)
            if check is not None and check(now):
                cuts += 1
                if cuts >= MAX_CUTS_PER_SWEEP:
                    break
        wall = time.monotonic()
        for event in [e for e, at in self._logged_at.items() if self._events.get(e) and wall - at >= LOG_EVERY_SECONDS]:
            self._flush(event, wall)
