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
