"""Per-request context: a request id (taken or made), returned in X-Request-ID, and one access log line."""

from __future__ import annotations

import itertools
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.monitoring.logging import add_request_fields, bind_request, clear_request, log_request

# A client-supplied id is echoed into logs and headers: keep it short and boring.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Generated ids need to be unique, not secret: a per-process random prefix and a counter cost
# nothing, where uuid4 costs a system call per request.
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


class RequestContextMiddleware:
    """Pure ASGI middleware, so it costs microseconds and never buffers a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = supplied if supplied and _SAFE_ID.match(supplied) else f"{_PREFIX}-{next(_COUNTER):x}"
        bind_request(request_id, method=scope["method"], path=scope["path"])
        started = time.perf_counter_ns()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            if route is not None:
                add_request_fields(route=getattr(route, "path", None))
            caller = scope.get("state", {}).get("caller")
            if caller is not None:
                add_request_fields(user=caller)
            log_request(
                method=scope["method"],
                path=scope["path"],
                status_code=status,
                duration_ns=time.perf_counter_ns() - started,
            )
            clear_request()
