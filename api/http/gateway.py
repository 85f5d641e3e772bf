"""The outermost layer of every HTTP request: its id, access log line, HTTP metrics and response headers.

One pure-ASGI layer does all four because each layer costs a coroutine frame and a `send`
wrapper per request, a measurable share of a ~150 µs request on one core. It is also the last
resort for errors: anything that escapes the layers inside it becomes the service's JSON error
(a `ServiceError` with its own status, anything else a 500), never a bare text page.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Final, Protocol

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ClientDisconnectedError, InternalError, ServiceError
from api.http.headers import response_headers
from api.http.respond import ERROR_CODE, send_error
from api.http.scope import route_path
from api.observability.logging import add_request_fields, bind_request, clear_request, log_request
from api.observability.metrics import ServiceMetrics

log = logging.getLogger("api")

# A client-supplied id is echoed into logs and headers: keep it short and boring.
_SAFE_ID: Final = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Generated ids need to be unique, not secret: a per-process random prefix and a counter cost
# nothing, where uuid4 costs a system call per request.
_PREFIX: Final = os.urandom(6).hex()
_COUNTER = itertools.count(1)



class Lifecycle(Protocol):
    """What the gateway needs to know about the instance's life: whether it is draining before shutdown."""

    draining: bool


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is safe to echo, else a fresh one."""
    supplied = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
    return supplied if supplied and _SAFE_ID.match(supplied) else f"{_PREFIX}-{next(_COUNTER):x}"


def route_template(scope: Scope) -> str | None:
    """The matched route's path template, as Starlette's router leaves it in the scope."""
    route = scope.get("route")
    if route is None:
        return None
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else None


class Gateway:
    """Request id, access log, metrics and security headers for every HTTP request, in one layer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServiceMetrics,
        docs_paths: frozenset[str],
        static_prefix: str,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.docs_paths = docs_paths
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        rid = request_id(scope)
        bind_request(rid, method=scope["method"], path=scope["path"])
        path = route_path(scope)
        kind = "static" if path.startswith(self.static_prefix) else "docs" if path in self.docs_paths else "api"
        extra = (*response_headers(kind, tls=scope.get("scheme") == "https"), (b"x-request-id", rid.encode()))
        status = 0
        lifecycle = self.lifecycle

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                if lifecycle is not None and lifecycle.draining:
                    # Draining before shutdown: keep-alive clients reconnect (through the balancer) elsewhere.
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_observed)
        except ClientDisconnect:
            # The client hung up mid-body: its own abort, not our failure. Nothing is sent (nobody reads it);
            # the request is counted as client_disconnected and logged as 499, without a traceback.
            scope[ERROR_CODE] = ClientDisconnectedError.code
            status = status or ClientDisconnectedError.status_code
        except Exception as exc:
            if status:
                raise  # the answer is already on its way: the server closes the connection
            error = exc if isinstance(exc, ServiceError) else InternalError()
            if error is not exc:
                log.exception("unhandled error", extra={"route": route_template(scope)})
            await send_error(scope, send_observed, error)
        finally:
            metrics.in_flight.dec()
            code = scope.get(ERROR_CODE)
            if code is not None:
                metrics.observe_error(code)
            elapsed_ns = time.perf_counter_ns() - started
            template = route_template(scope)
            final_status = status or 500
            metrics.observe_request(
                template if template is not None else metrics.route_label(scope["path"]),
                scope["method"],
                final_status,
                elapsed_ns / 1e9,
            )
            if template is not None:
                add_request_fields(route=template)
            caller = scope.get("state", {}).get("caller")
            if caller is not None:
                add_request_fields(user=caller)
            log_request(method=scope["method"], path=scope["path"], status_code=final_status, duration_ns=elapsed_ns)
            clear_request()
