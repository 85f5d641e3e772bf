"""Pure ASGI middleware that bounds every request: response headers, timeout, body size, rate."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from typing import Final

import orjson
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLargeError, ServiceError

Header = tuple[bytes, bytes]

HSTS: Final = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
API_CSP: Final = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI runs an inline bootstrap script and both UIs use inline styles and data: images.
DOCS_CSP: Final = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class RateLimitedError(ServiceError):
    """The client sent more requests than RATE_LIMIT allows."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class RequestTimeoutError(ServiceError):
    """The request took longer than REQUEST_TIMEOUT_SECONDS."""

    status_code = 504
    code = "timeout"


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (ASGI names are lower-case)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def route_path(scope: Scope) -> str:
    """The path the router matches, without any root_path prefix."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def retry_after(error: ServiceError) -> dict[str, str]:
    """Retry-After for answers that mean "not now" (429, 503)."""
    if error.status_code not in (429, 503):
        return {}
    return {"Retry-After": str(getattr(error, "retry_after_seconds", 1))}


async def send_error(send: Send, error: ServiceError, headers: Iterable[Header] = ()) -> None:
    """Answer with the service's JSON error body, before the app has started a response."""
    body = orjson.dumps(error.to_body())
    start_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in retry_after(error).items()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


_API_HEADERS: Final = (*_COMMON, (b"content-security-policy", API_CSP), (b"cache-control", b"no-store"))
_PAGE_HEADERS: Final = {
    "api": _API_HEADERS,
    "docs": (*_COMMON, (b"content-security-policy", DOCS_CSP), (b"cache-control", b"no-store")),
    "static": (*_COMMON, (b"content-security-policy", DOCS_CSP)),
}
_TLS_PAGE_HEADERS: Final = {kind: (*headers, HSTS) for kind, headers in _PAGE_HEADERS.items()}


def response_headers(kind: str, *, tls: bool) -> tuple[Header, ...]:
    """nosniff, DENY framing, no referrer, no-store, a CSP per page kind (api, docs, static), and HSTS over TLS."""
    return (_TLS_PAGE_HEADERS if tls else _PAGE_HEADERS)[kind]


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
                reply = asyncio.get_running_loop().create_task(send_error(send, error))

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
                await send_error(send, self._error())
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
                    await send_error(send, self._error())
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLargeError:
            if started or replied:
                raise
            await send_error(send, self._error())


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
                await send_error(send, error)
                return
        await self.app(scope, receive, send)
