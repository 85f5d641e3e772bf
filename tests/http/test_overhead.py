"""What the request layers in front of /predict cost per request, in process (~20-30 µs of CPU on a CI core)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

import jwt
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import build_authenticator
from api.http.access import DOCS_PATHS, PROBE_PATHS, STATIC_DOCS_PREFIX, AuthMiddleware, client_key
from api.http.gateway import Gateway
from api.http.limits import BodyLimitMiddleware, RateLimitMiddleware, TimeoutMiddleware
from api.observability.metrics import ServiceMetrics
from tests.support.timing import undisturbed

SECRET = "s" * 48
KEY = "k" * 43
# Generous: the point is to catch an accidental O(body) or per-request setup, not to benchmark.
BUDGET_US = 100.0  # CPU time of this thread
WALL_BUDGET_US = 1000.0  # wall time: catches a blocking call (sleep, file read) that costs no CPU


REACHED = [0]  # requests that got through every layer to the inner app


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    REACHED[0] += 1
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


def stack(rate_limit: bool) -> ASGIApp:
    """The same layers, in the same order, as create_app puts in front of /predict (without CORS)."""
    auth = build_authenticator(
        disabled=False,
        api_keys=f"bench:{KEY}",
        api_keys_file=None,
        jwt_secret=SECRET,
        jwt_public_key=None,
        jwt_jwks_file=None,
        jwt_audience="bench",
        jwt_issuer=None,
    ).authenticator
    app: ASGIApp = BodyLimitMiddleware(bare, max_bytes=4 << 20)
    app = AuthMiddleware(app, authenticator=auth, metrics_auth=False)
    if rate_limit:
        key = partial(client_key, authenticator=auth)
        app = RateLimitMiddleware(app, limit="1000000/minute", client_key=key, exempt=PROBE_PATHS)
    app = TimeoutMiddleware(app, seconds=30, exempt=PROBE_PATHS)
    metrics = ServiceMetrics(process_metrics=False)
    return Gateway(app, metrics=metrics, docs_paths=DOCS_PATHS, static_prefix=STATIC_DOCS_PREFIX)


async def per_request_us(app: ASGIApp, credential: tuple[bytes, bytes], n: int = 2000) -> tuple[float, float]:
    """CPU and wall microseconds per request through `app`; every answer must be the inner app's 200.

    Thread CPU time, not wall time: on a loaded machine this thread waits for a core (wall time
    grew 10x at load 8 on 2 cores) but the layers do no more work, so a budget on CPU time holds.
    """
    headers = [(b"host", b"x"), (b"content-type", b"application/json"), (b"content-length", b"300"), credential]
    statuses: Counter[int] = Counter()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    reached = REACHED[0]
    started, wall = time.thread_time(), time.perf_counter()
    for _ in range(n):
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/predict",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "scheme": "http",
            "state": {},
        }
        await app(scope, receive, send)
    elapsed = (time.thread_time() - started) / n * 1e6, (time.perf_counter() - wall) / n * 1e6
    # A refusal (401, 429, 413 …) is cheap: timing it would hide a slow accepted path.
    assert statuses == {200: n}, dict(statuses)
    assert REACHED[0] - reached == n
    return elapsed


async def overhead_us(layers: ASGIApp, credential: tuple[bytes, bytes], rounds: int = 7) -> tuple[float, float]:
    """Cost of the layers per request: bare and layered runs interleaved, so both see the same
    machine; the quietest round counts (cache misses after a context switch only ever add time)."""
    cpu = wall = float("inf")
    for _ in range(rounds):
        layered_cpu, layered_wall = await per_request_us(layers, credential)
        bare_cpu, bare_wall = await per_request_us(bare, credential)
        cpu, wall = min(cpu, layered_cpu - bare_cpu), min(wall, layered_wall - bare_wall)
    return cpu, wall


def _api_key() -> tuple[bytes, bytes]:
    return (b"x-api-key", KEY.encode())


def _jwt() -> tuple[bytes, bytes]:
    # Minted when the test runs, not when it is collected: a full run reaches it long after collection.
    claims = {"sub": "bench", "aud": "bench", "exp": int(time.time()) + 600, "scope": "predict"}
    return (b"authorization", b"Bearer " + jwt.encode(claims, SECRET).encode())


@pytest.mark.parametrize(
    ("rate_limit", "credential_for"),
    [
        pytest.param(False, _api_key, id="api-key"),
        pytest.param(True, _api_key, id="api-key-rate-limited"),
        pytest.param(True, _jwt, id="jwt-rate-limited"),
    ],
)
def test_overhead_per_request(rate_limit: bool, credential_for: Callable[[], tuple[bytes, bytes]]) -> None:
    layers = stack(rate_limit)
    credential = credential_for()
    # A real regression (per-request setup, O(body) work) is slow in every attempt; a loaded
    # machine is slow in some. Up to three attempts, each already the best of seven rounds.
    attempts: list[tuple[float, float]] = []
    for _ in range(3):
        with undisturbed():
            attempts.append(asyncio.run(overhead_us(layers, credential)))
        if attempts[-1][0] < BUDGET_US and attempts[-1][1] < WALL_BUDGET_US:
            break
    shown = [f"{cpu:.1f} µs CPU, {wall:.1f} µs wall" for cpu, wall in attempts]
    assert min(cpu for cpu, _ in attempts) < BUDGET_US, shown
    assert min(wall for _, wall in attempts) < WALL_BUDGET_US, shown


def test_a_refused_request_is_not_timed_as_served() -> None:
    # The timing above would be meaningless if the layers answered 401 before the inner app.
    with pytest.raises(AssertionError, match="401"):
        asyncio.run(per_request_us(stack(rate_limit=False), (b"x-api-key", b"wrong-key-0123456789"), n=10))
