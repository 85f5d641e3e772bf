"""The limit middleware in process, around a small ASGI app: 413, 429 and 504 exactly at their edges."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLargeError
from api.http.limits import BodyLimitMiddleware, RateLimitMiddleware, TimeoutMiddleware
from api.http.respond import ERROR_CODE

Reply = tuple[int, dict[str, str], bytes]


def scope_for(path: str = "/predict", headers: dict[str, str] | None = None, client: str = "10.0.0.1") -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": (client, 1),
        "state": {},
    }


async def call(app: ASGIApp, scope: Scope, chunks: list[bytes] = ()) -> Reply:  # type: ignore[assignment]
    """Drive one request; the reply's status, headers and body (several replies would be a bug)."""
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    messages: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    starts = [m for m in messages if m["type"] == "http.response.start"]
    assert len(starts) == 1, messages
    headers = {k.decode(): v.decode() for k, v in starts[0]["headers"]}
    return starts[0]["status"], headers, b"".join(m.get("body", b"") for m in messages[1:])


def reading_app(consumed: list[int]) -> ASGIApp:
    """Reads the whole body, answers 200 with its length."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        consumed.append(size)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"{scope['path']} {size}".encode()})

    return app


def error_of(reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(reply[2])["error"]
    return body


@pytest.mark.parametrize(
    ("headers", "chunks", "status"),
    [
        pytest.param({"content-length": "100"}, [b"x" * 100], 200, id="declared-at-the-limit"),
        pytest.param({"content-length": "101"}, [b"x" * 101], 413, id="declared-past-the-limit"),
        pytest.param({"content-length": "abc"}, [b"x"], 200, id="unparsable-length-left-to-the-server"),
        pytest.param({"transfer-encoding": "chunked"}, [b"x" * 50, b"x" * 50], 200, id="chunked-at-the-limit"),
        pytest.param({"transfer-encoding": "chunked"}, [b"x" * 50, b"x" * 51], 413, id="chunked-past-the-limit"),
        pytest.param({"transfer-encoding": "chunked"}, [b"x" * 101, b"x"], 413, id="first-chunk-past-the-limit"),
        pytest.param({}, [b""], 200, id="no-body"),
    ],
)
def test_body_limit(headers: dict[str, str], chunks: list[bytes], status: int) -> None:
    consumed: list[int] = []
    scope = scope_for(headers=headers)
    reply = asyncio.run(call(BodyLimitMiddleware(reading_app(consumed), max_bytes=100), scope, chunks))
    assert reply[0] == status, reply
    if status == 413:
        assert error_of(reply) == {"code": "payload_too_large",
                                   "message": "request body exceeds the limit of 100 bytes"}
        assert scope[ERROR_CODE] == "payload_too_large"
        assert consumed == []  # the app never finished reading a body past the limit
    else:
        assert reply[2] == f"/predict {sum(map(len, chunks))}".encode()  # the app saw this request


def test_body_limit_answers_413_even_when_the_app_swallows_the_error() -> None:
    async def forgiving(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception:  # what FastAPI does with a broken body: a 400 of its own
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad body"})

    scope = scope_for(headers={"transfer-encoding": "chunked"})
    reply = asyncio.run(call(BodyLimitMiddleware(forgiving, max_bytes=10), scope, [b"x" * 8, b"x" * 8]))
    assert reply[0] == 413 and error_of(reply)["code"] == "payload_too_large"


def test_body_past_the_limit_after_the_answer_started_aborts_without_a_second_answer() -> None:
    # A streaming app that answers before reading everything: a 413 can no longer be sent, so
    # the error propagates (the server drops the connection) and nothing else is sent.
    async def eager(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            pass

    sent: list[Message] = []
    pending = [{"type": "http.request", "body": b"x" * 8, "more_body": True},
               {"type": "http.request", "body": b"x" * 8, "more_body": False}]

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodyLimitMiddleware(eager, max_bytes=10)
    with pytest.raises(PayloadTooLargeError):
        asyncio.run(middleware(scope_for(headers={"transfer-encoding": "chunked"}), receive, send))
    assert sent == [{"type": "http.response.start", "status": 200, "headers": []}]


def waiting_app(seconds: float, *, start_first: bool = False) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(seconds)
        if not start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    return app


def test_timeout_answers_504_in_time() -> None:
    middleware = TimeoutMiddleware(waiting_app(5.0), seconds=0.05, exempt=frozenset({"/health"}))
    started = time.perf_counter()
    reply = asyncio.run(call(middleware, scope_for()))
    assert time.perf_counter() - started < 2.0
    assert reply[0] == 504
    assert error_of(reply) == {"code": "timeout", "message": "the request took longer than 0.05 s"}


@pytest.mark.parametrize(
    ("path", "app_seconds", "status", "body"),
    [
        pytest.param("/predict", 0.0, 200, b"done", id="fast-request"),
        pytest.param("/health", 0.3, 200, b"done", id="exempt-path-is-never-cut"),
    ],
)
def test_timeout_lets_through(path: str, app_seconds: float, status: int, body: bytes) -> None:
    middleware = TimeoutMiddleware(waiting_app(app_seconds), seconds=0.1, exempt=frozenset({"/health"}))
    assert asyncio.run(call(middleware, scope_for(path))) == (status, {}, body)


def test_timeout_after_the_response_started_sends_nothing_more() -> None:
    middleware = TimeoutMiddleware(waiting_app(5.0, start_first=True), seconds=0.05, exempt=frozenset())
    status, _, body = asyncio.run(call(middleware, scope_for()))
    assert (status, body) == (200, b"")  # the started answer is cut, not followed by a second one


def counting_app(calls: list[str]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.request"  # the client's receive, passed through
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def test_rate_limit_per_client_with_retry_after() -> None:
    calls: list[str] = []
    key: Callable[[Scope], str] = lambda scope: scope["client"][0]  # noqa: E731
    middleware = RateLimitMiddleware(counting_app(calls), limit="3/minute", client_key=key,
                                      exempt=frozenset({"/health"}))

    async def burst() -> list[int]:
        statuses = [(await call(middleware, scope_for(), [b""]))[0] for _ in range(4)]
        statuses.append((await call(middleware, scope_for(client="10.0.0.2"), [b""]))[0])  # another client
        statuses += [(await call(middleware, scope_for("/health"), [b""]))[0] for _ in range(5)]  # exempt
        return statuses

    assert asyncio.run(burst()) == [200, 200, 200, 429, 200] + [200] * 5
    assert calls == ["/predict"] * 4 + ["/health"] * 5
    scope = scope_for()
    status, headers, body = asyncio.run(call(middleware, scope))
    assert status == 429 and scope[ERROR_CODE] == "rate_limited"
    # The window (a minute) opened with the first request, a few seconds ago at most.
    assert 45 <= int(headers["retry-after"]) <= 60, headers
    assert json.loads(body)["error"]["message"] == "rate limit of 3 per 1 minute exceeded"


@pytest.mark.parametrize("limit", ["lots", "", "10/fortnight"])
def test_a_bad_rate_limit_is_refused_at_start(limit: str) -> None:
    with pytest.raises(ValueError, match=r"RATE_LIMIT .*expected e\.g\. 600/minute"):
        RateLimitMiddleware(counting_app([]), limit=limit, client_key=lambda s: "k", exempt=frozenset())


async def call_raw(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await app(scope, receive, send)


def test_non_http_scopes_pass_every_limit() -> None:
    seen: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def noop_receive() -> Message:
        return {"type": "lifespan.startup"}

    async def noop_send(message: Message) -> None:
        return None

    wrapped: list[ASGIApp] = [
        BodyLimitMiddleware(lifespan_app, max_bytes=1),
        TimeoutMiddleware(lifespan_app, seconds=0.01, exempt=frozenset()),
        RateLimitMiddleware(lifespan_app, limit="1/minute", client_key=lambda s: "k", exempt=frozenset()),
    ]
    for app in wrapped:
        for _ in range(2):
            asyncio.run(call_raw(app, {"type": "lifespan"}, noop_receive, noop_send))
    assert seen == ["lifespan"] * 6
