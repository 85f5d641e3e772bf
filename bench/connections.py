"""What the connection guard costs: the service with it (production) and without it, same run, interleaved.

Both servers serve the same bundle on CPU 0 at the same time (the idle one costs nothing); wrk
on CPU 1 loads them in turn, A B B A A B, so drift in the machine's load hits both alike. Two
scenarios: keep-alive connections (the per-request cost: deadline bookkeeping, the receive
wrapper) and a new connection per request (the per-connection cost: admission, counting).
The ratio of medians is the guard's cost; 1.00× is free.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import run_wrk
from bench.servers import RunningServer, ServerSpec, free_port

GUARDED, PLAIN = "guarded (production)", "stock uvicorn httptools"
SCENARIOS = (("1 row, c16, keep-alive", {}), ("1 row, c16, new connection per request", {"Connection": "close"}))
ROUNDS = 3


def _spec(name: str, module: str, model_dir: Path, api_key: str, python: Path, root: Path) -> ServerSpec:
    port = free_port()
    env = {
        "MODEL_DIR": str(model_dir),
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "API_KEYS": f"bench:{api_key}",
        "LOG_LEVEL": "WARNING",
    }
    return ServerSpec(name, [str(python), "-m", module], port, "/ready", env, root)


def measure(
    model_dir: Path, body: Path, api_key: str, seconds: float, work: Path, *, root: Path, cpus: tuple[int, int]
) -> list[dict[str, Any]]:
    """One row per scenario: median req/s with and without the guard, and their ratio."""
    specs = [
        _spec(GUARDED, "api", model_dir, api_key, Path(sys.executable), root),
        _spec(PLAIN, "bench.plain_server", model_dir, api_key, Path(sys.executable), root),
    ]
    headers = {"X-API-Key": api_key}
    server_cpu, wrk_cpu = cpus
    rows = []
    with (
        RunningServer(specs[0], work / "guard-on.log", server_cpu) as guarded,
        RunningServer(specs[1], work / "guard-off.log", server_cpu) as plain,
    ):
        guarded.wait_ready()
        plain.wait_ready()
        for scenario, extra in SCENARIOS:
            rates: dict[str, list[float]] = {GUARDED: [], PLAIN: []}
            errors = 0
            for turn in range(ROUNDS):
                for server in (guarded, plain) if turn % 2 == 0 else (plain, guarded):
                    url = server.spec.base_url + "/predict"
                    result = run_wrk(url, body, {**headers, **extra}, 16, seconds, cpu=wrk_cpu)
                    rates[server.spec.name].append(result.requests_per_s)
                    errors += result.non_2xx + result.socket_errors
            on, off = statistics.median(rates[GUARDED]), statistics.median(rates[PLAIN])
            rows.append(
                {
                    "scenario": scenario,
                    "guarded": on,
                    "plain": off,
                    "ratio": on / off if off else None,
                    "runs": rates,
                    "errors": errors,
                }
            )
            print(
                f"   {scenario:<40} guarded {on:8.1f} req/s  stock {off:8.1f} req/s  ratio {on / off:.3f}", flush=True
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | guarded req/s (median) | stock uvicorn req/s (median) | ratio | runs guarded / stock | errors |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        runs = " / ".join(", ".join(f"{x:.0f}" for x in r["runs"][k]) for k in (GUARDED, PLAIN))
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.3f}×"
        lines.append(f"| {r['scenario']} | {r['guarded']:.1f} | {r['plain']:.1f} | {ratio} | {runs} | {r['errors']} |")
    return "\n".join(lines)


# --- the protocol alone: in process, CPU time, a trivial app --------------------------------
_REQUEST = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def _trivial_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _cpu_us_per_request(protocol: type, requests: int, close: bool) -> float:
    import asyncio

    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(_trivial_app, http=protocol, lifespan="off", log_level="warning", access_log=False)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: protocol(config=config, server_state=state, app_state={}), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = _REQUEST.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n") if close else _REQUEST
    started = time.process_time()
    if close:
        for _ in range(requests):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await reader.read()
            writer.close()
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(requests):
            writer.write(request)
            await reader.readuntil(b"ok")
        writer.close()
    spent = time.process_time() - started
    server.close()
    return spent / requests * 1e6


def protocol_floor(rounds: int = 9) -> list[dict[str, Any]]:
    """CPU µs per request (client and server in one process) with uvicorn's protocol and with ours."""
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from api.config import Settings
    from api.http.connections import ConnectionGuard, ConnectionLimits
    from api.http.protocol import protocol_for
    from api.observability.metrics import ServiceMetrics

    guard = ConnectionGuard(ConnectionLimits.from_settings(Settings(), 65536), ServiceMetrics(process_metrics=False))
    ours = protocol_for(guard, frozenset({"/health"}))

    async def measure() -> list[dict[str, Any]]:
        rows = []
        for label, close, requests in (("keep-alive", False, 5000), ("new connection per request", True, 1000)):
            spent: dict[str, list[float]] = {GUARDED: [], PLAIN: []}
            for turn in range(rounds):
                pair = ((GUARDED, ours), (PLAIN, HttpToolsProtocol))
                for name, protocol in pair if turn % 2 == 0 else pair[::-1]:
                    spent[name].append(await _cpu_us_per_request(protocol, requests, close))
            on, off = statistics.median(spent[GUARDED]), statistics.median(spent[PLAIN])
            rows.append({"scenario": label, "guarded_us": on, "plain_us": off, "extra_us": on - off})
            print(f"   protocol floor, {label:<28} guarded {on:6.1f} µs  stock {off:6.1f} µs  (+{on - off:.1f} µs)")
        return rows

    return uvloop.run(measure())


def floor_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| trivial app, client in the same process | guarded CPU µs / request | stock CPU µs / request | extra µs |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['scenario']} | {r['guarded_us']:.1f} | {r['plain_us']:.1f} | {r['extra_us']:+.1f} |" for r in rows]
    return "\n".join(lines)
