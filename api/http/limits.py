"""Pure ASGI middleware that bounds every request: timeout, body size, rate.

RATE_LIMIT counts per replica in memory, or across replicas in Redis when REDIS_URL is set (the
`limits` package's async Redis storage). Redis unreachable fails *over*, not open or closed: each
replica enforces RATE_LIMIT on its own counters (the documented no-Redis behaviour) until Redis
answers again, checked at most every REDIS_RETRY_SECONDS, with a warning in the log. A rate limit
is a guard against greedy clients, not an authorization: refusing everyone because a counter store
is down would turn a Redis outage into a service outage, and the per-caller quotas still hold.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter as SharedRateLimiter
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLargeError, RateLimitedError, RequestTimeoutError
from api.http.respond import send_error
from api.http.scope import header, route_path

log = logging.getLogger("api.http.limits")
REDIS_TIMEOUT_SECONDS = 0.25  # a counter store slower than this is treated as down for the request
REDIS_RETRY_SECONDS = 5.0


class TimeoutMiddleware:
    """504 once REQUEST_TIMEOUT_SECONDS pass, even while the app waits on a worker thread."""

    def __init__(self, app: ASGIApp, *, seconds: float, exempt: frozenset[str]) -> None:
        self.app = app
        self.seconds = seconds
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in self.exempt:
            await self.app(scope, receive, send)
            return
        started = expired = False
        reply: asyncio.Task[None] | None = None

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if expired:
                return  # the 504 has answered this request
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.current_task()

        def expire() -> None:
            # Cancelling alone is not enough: a thread the app awaits (run_in_threadpool) is not
            # interruptible, so the 504 goes out now and the app is cancelled when it wakes.
            nonlocal expired, reply
            expired = True
            if task is not None:
                task.cancel()
            if not started:
                error = RequestTimeoutError(f"the request took longer than {self.seconds:g} s")
                reply = asyncio.get_running_loop().create_task(send_error(scope, send, error))

        # A plain asyncio timer + Task.cancel: an anyio CancelScope per request costs more than
        # the rest of this middleware stack together.
        timer = asyncio.get_running_loop().call_later(self.seconds, expire)
        try:
            await self.app(scope, receive, guarded_send)
        except asyncio.CancelledError:
            if not expired or task is None:
                raise
            task.uncancel()
        finally:
            timer.cancel()
        if reply is not None:
            await reply


class BodyLimitMiddleware:
    """413 for a declared Content-Length past the limit, and for a chunked body once it passes it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"request body exceeds the limit of {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await send_error(scope, send, self._error())
                return
            # The server never delivers more than the declared length.
            await self.app(scope, receive, send)
            return
        if header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)  # no body at all
            return
        await self._streamed(scope, receive, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        exceeded = started = replied = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise self._error()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replied
            if exceeded:
                # Whatever the app made of the interrupted body (FastAPI says 400), the answer is 413.
                if message["type"] == "http.response.start" and not replied:
                    replied = True
                    await send_error(scope, send, self._error())
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLargeError:
            if started or replied:
                raise
            await send_error(scope, send, self._error())


class SharedCounters:
    """RATE_LIMIT counters in Redis, shared by every replica using the same REDIS_URL and key prefix."""

    def __init__(self, url: str, key_prefix: str) -> None:
        scheme, _, rest = url.partition("://")
        self.storage = RedisStorage(
            f"async+{scheme}://{rest}",
            implementation="redispy",
            key_prefix=key_prefix,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self.limiter = SharedRateLimiter(self.storage)
        self.down_until = 0.0

    async def hit(self, item: RateLimitItem, key: str) -> tuple[bool, float] | None:
        """(allowed, window reset time), or None when Redis cannot answer now."""
        if time.monotonic() < self.down_until:
            return None
        try:
            async with asyncio.timeout(2 * REDIS_TIMEOUT_SECONDS):
                allowed = await self.limiter.hit(item, key)
                reset = 0.0 if allowed else (await self.limiter.get_window_stats(item, key)).reset_time
        except Exception as exc:  # noqa: BLE001 - any failure of the counter store means "use the local counters"
            self.down_until = time.monotonic() + REDIS_RETRY_SECONDS
            log.warning(
                "REDIS_URL unreachable: RATE_LIMIT is counted per replica until it answers again",
                extra={"error": type(exc).__name__, "retry_seconds": REDIS_RETRY_SECONDS},
            )
            return None
        return allowed, reset


class RateLimitMiddleware:
    """RATE_LIMIT per client (fixed window, one counter per client): 429 + Retry-After.

    Counted in Redis when ``shared`` is given (all replicas together), else in this process.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: str,
        client_key: Callable[[Scope], str],
        exempt: frozenset[str],
        shared: SharedCounters | None = None,
    ) -> None:
        self.app = app
        try:
            self.item = parse(limit)
        except ValueError as exc:
            raise ValueError(f"RATE_LIMIT {limit!r}: expected e.g. 600/minute") from exc
        self.limiter = FixedWindowRateLimiter(MemoryStorage())
        self.shared = shared
        self.client_key = client_key
        self.exempt = exempt
        self.description = f"{self.item.amount} per {self.item.multiples} {self.item.GRANULARITY.name}"

    async def _allowed(self, key: str) -> tuple[bool, float]:
        if self.shared is not None and (verdict := await self.shared.hit(self.item, key)) is not None:
            return verdict
        if self.limiter.hit(self.item, key):
            return True, 0.0
        return False, self.limiter.get_window_stats(self.item, key).reset_time

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and route_path(scope) not in self.exempt:
            allowed, reset = await self._allowed(self.client_key(scope))
            if not allowed:
                retry = max(1, math.ceil(reset - time.time()))
                error = RateLimitedError(f"rate limit of {self.description} exceeded", retry_after_seconds=retry)
                await send_error(scope, send, error)
                return
        await self.app(scope, receive, send)
