"""Pure ASGI middleware that bounds every request: timeout, body size, rate."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLargeError, RateLimitedError, RequestTimeoutError
from api.http.respond import send_error
from api.http.scope import header, route_path


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


class RateLimitMiddleware:
    """RATE_LIMIT per client (fixed window, in memory, one counter per client): 429 + Retry-After."""

    def __init__(self, app: ASGIApp, *, limit: str, client_key: Callable[[Scope], str], exempt: frozenset[str]) -> None:
        self.app = app
        try:
            self.item = parse(limit)
        except ValueError as exc:
            raise ValueError(f"RATE_LIMIT {limit!r}: expected e.g. 600/minute") from exc
        self.limiter = FixedWindowRateLimiter(MemoryStorage())
        self.client_key = client_key
        self.exempt = exempt
        self.description = f"{self.item.amount} per {self.item.multiples} {self.item.GRANULARITY.name}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and route_path(scope) not in self.exempt:
            key = self.client_key(scope)
            if not self.limiter.hit(self.item, key):
                reset = self.limiter.get_window_stats(self.item, key).reset_time
                retry = max(1, math.ceil(reset - time.time()))
                error = RateLimitedError(f"rate limit of {self.description} exceeded", retry_after_seconds=retry)
                await send_error(scope, send, error)
                return
        await self.app(scope, receive, send)
