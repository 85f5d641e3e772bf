"""uvicorn's httptools HTTP/1.1 protocol with deadlines and connection caps (see ``api.http.connections``).

uvicorn closes an idle keep-alive connection, but nothing else: a client that connects and sends
nothing, or half a request line, or promises a body and trickles it, holds its connection (a file
descriptor) for ever. This subclass gives each request

- a header deadline (HEADER_TIMEOUT_SECONDS) from the connection's start or the request's first
  byte to the end of its headers: past it the connection is closed (with a 408 when part of a
  request had arrived);
- a body deadline (BODY_TIMEOUT_SECONDS) from the end of the headers to the end of the body:
  past it the app's next ``receive()`` raises ``ClientTimeoutError``, so the 408 goes out through
  the app's own error path (and is counted once, by the gateway), and the connection closes;
- admission by :class:`ConnectionGuard`: over a cap, the request is answered 503 without
  reaching the app, unless it asks for a probe path.

Per request it costs a few attribute writes and a small receive wrapper; deadlines are checked
by the guard's sweep, not by timers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, ClassVar, Final, cast

from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.errors import (
    PROBLEM_JSON,
    ClientTimeoutError,
    MalformedRequestError,
    ServiceError,
    TooManyConnectionsError,
    render_error,
    wants_problem_json,
)
from api.http.connections import CLOSE_GRACE_SECONDS, REFUSED_HEADER_SECONDS, ConnectionGuard
from api.http.headers import response_headers
from api.http.respond import send_error
from api.http.scope import route_path

# Where a connection is in its current request.
IDLE: Final = 0  # between requests (uvicorn's keep-alive timeout applies) or the app is answering
HEADERS: Final = 1  # waiting for the request line and headers
BODY: Final = 2  # headers in, body still arriving
CLOSING: Final = 3  # timed out: the answer is on its way, then the connection closes


DISCONNECT: Final = {"type": "http.disconnect"}


class TimedReceive:
    """The app's ``receive``, raising ``ClientTimeoutError`` once the body deadline has passed.

    It and uvicorn's request cycle refer to each other: :meth:`release` breaks the loop once the
    response is complete, so both are freed by reference counting, not left to the garbage
    collector (which costs more than everything else this module adds).
    """

    __slots__ = ("cycle", "inner", "timed_out")

    def __init__(self, cycle: Any) -> None:
        self.cycle: Any = cycle  # uvicorn's RequestResponseCycle
        self.inner: Receive | None = cast(Receive, cycle.receive)
        self.timed_out: ClientTimeoutError | None = None

    async def __call__(self) -> Message:
        inner = self.inner
        if inner is None:
            return dict(DISCONNECT)  # the response is complete: what uvicorn's receive answers then
        message = await inner()
        if self.timed_out is not None and message["type"] == "http.request":
            raise self.timed_out
        return message

    def release(self) -> None:
        self.inner = self.cycle = None

    def disconnected(self) -> None:
        """The connection is gone: the app's next send is dropped, as uvicorn does for its current request.

        uvicorn marks only the newest parsed request; an earlier pipelined one still answering would
        write to the closed transport and fail with a RuntimeError logged as a 500.
        """
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.release()


class Refusal:
    """The app a refused connection's request reaches: 503 too_many_connections, probes excepted."""

    def __init__(self, app: Any, guard: ConnectionGuard, probe_paths: frozenset[str], reason: str) -> None:
        self.app = app
        self.guard = guard
        self.probe_paths = probe_paths
        self.reason = reason

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and route_path(scope) in self.probe_paths:
            await self.app(scope, receive, send)
            return
        limits = self.guard.limits
        which = (
            f"this client address holds {limits.max_per_client} connections (MAX_CONNECTIONS_PER_CLIENT)"
            if self.reason == "client_cap"
            else f"the server holds {limits.max_connections} connections (MAX_CONNECTIONS)"
        )
        error = TooManyConnectionsError(f"too many connections: {which}; retry later", retry_after_seconds=1)
        extra = response_headers("api", tls=scope.get("scheme") == "https")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        await send_error(scope, with_headers, error)
        self.guard.metrics.observe_error(error.code)  # no gateway saw this request: count it here


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header/body deadlines and connection caps; ``guard`` is set by :func:`protocol_for`."""

    guard: ClassVar[ConnectionGuard]
    probe_paths: ClassVar[frozenset[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = HEADERS
        self._since = 0.0
        self._header_limit = self.guard.limits.header_timeout
        self._host = ""
        self._served = False
        self._registered = False
        self._partial = False  # some bytes of the current request have arrived
        self._receive: TimedReceive | None = None  # the one of the request whose body is arriving
        self._receives: deque[TimedReceive] = deque()  # requests not yet answered, oldest first
        self._write_paused_since: float | None = None

    # --- connection -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._host = self.client[0] if self.client else ""
        self._since = self.loop.time()
        refusal = self.guard.admit(self._host)
        self._registered = True
        if refusal is None:
            self._served = True
        elif refusal == "fd_limit":
            transport.abort()
        else:
            self._header_limit = min(self._header_limit, REFUSED_HEADER_SECONDS)
            self.app = Refusal(self.app, self.guard, self.probe_paths, refusal)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._registered:
            self._registered = False
            self.guard.release(self._host, self._served)
        super().connection_lost(exc)
        for receive in self._receives:
            receive.disconnected()
        self._receives.clear()
        self._receive = None

    def on_response_complete(self) -> None:
        # Responses complete in request order (uvicorn starts a pipelined request after the one before).
        if self._receives:
            self._receives.popleft().release()
        super().on_response_complete()

    def data_received(self, data: bytes) -> None:
        if self._phase == IDLE:
            self._phase = HEADERS
            self._since = self.loop.time()
        self._partial = True
        super().data_received(data)

    # --- parser callbacks -------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # None: a websocket upgrade took over
            receive = TimedReceive(cycle)
            cycle.receive = receive  # type: ignore[method-assign,assignment]
            self._receive = receive
            self._receives.append(receive)
            if not self._served:
                cycle.keep_alive = False
        self._phase = BODY
        self._since = self.loop.time()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = IDLE
        self._partial = False

    def pause_writing(self) -> None:
        self._write_paused_since = self.loop.time()
        super().pause_writing()

    def resume_writing(self) -> None:
        self._write_paused_since = None
        super().resume_writing()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers what its parser refuses in plain text: answer with the service's error body.
        self._phase = CLOSING
        self._answer_now(MalformedRequestError("the request is not valid HTTP/1.1"))
        self.transport.close()

    # --- deadlines (called by the guard's sweep) --------------------------------------------
    def check_deadline(self, now: float) -> bool:
        """End the connection (or its request) if it is past its deadline; True when it did."""
        phase = self._phase
        if self.transport.is_closing():
            return False
        if phase == HEADERS and now - self._since > self._header_limit:
            self._header_timeout()
        elif phase == BODY and now - self._since > self.guard.limits.body_timeout:
            self._body_timeout(now)
        elif phase == CLOSING and now - self._since > CLOSE_GRACE_SECONDS:
            self.transport.abort()
        elif self._write_paused_since is not None and now - self._write_paused_since > self.guard.limits.body_timeout:
            # The client does not read its answer: the app waits on the socket's buffer for ever.
            self.guard.cut("send_timeout", self._host)
            self.transport.abort()
        else:
            return False
        return True

    def _header_timeout(self) -> None:
        self.guard.cut("header_timeout", self._host)
        if self._partial:
            limit = self._header_limit
            self._answer_now(ClientTimeoutError(f"the request's headers took longer than {limit:g} s to arrive"))
        self.transport.close()

    def _body_timeout(self, now: float) -> None:
        self.guard.cut("body_timeout", self._host)
        cycle = self.cycle
        self._phase, self._since = CLOSING, now
        if cycle is None or cycle.response_complete:
            self.transport.close()
            return
        cycle.keep_alive = False  # whatever the answer, the connection ends with it
        if not cycle.response_started and self._receive is not None:
            limit = self.guard.limits.body_timeout
            self._receive.timed_out = ClientTimeoutError(f"the request's body took longer than {limit:g} s to arrive")
            cycle.message_event.set()  # wake the app if it is waiting for more body

    def _answer_now(self, error: ServiceError) -> None:
        """Write ``error`` straight to the socket (no app is involved yet) and count it."""
        accept = next((v for k, v in (self.headers or ()) if k == b"accept"), None)
        head = b"".join(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        self.transport.write(head.join(_rendered(error, wants_problem_json(accept), self.scheme == "https")))
        self.guard.metrics.observe_error(error.code)


# A handful of distinct answers (408 headers/body, 400), written thousands of times under attack.
_RENDERED: dict[tuple[str, str, bool, bool], tuple[bytes, bytes]] = {}


def _rendered(error: ServiceError, problem: bool, tls: bool) -> tuple[bytes, bytes]:
    """The status line, and the rest after the server's default headers (Date, Server) of an answer."""
    key = (error.code, error.message, problem, tls)
    cached = _RENDERED.get(key)
    if cached is None:
        rendered = render_error(error, accept=PROBLEM_JSON if problem else None)
        headers = [*rendered.headers, *response_headers("api", tls=tls), (b"connection", b"close")]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        cached = _RENDERED[key] = (STATUS_LINE[rendered.status], head + b"\r\n" + rendered.body)
    return cached


def protocol_for(guard: ConnectionGuard, probe_paths: frozenset[str]) -> type[GuardedHttpToolsProtocol]:
    """A protocol class bound to this server's guard, for ``uvicorn.Config(http=...)``."""
    return type(
        "BoundGuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"guard": guard, "probe_paths": probe_paths},
    )
