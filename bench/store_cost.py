"""What the prediction store costs per request, thread by thread: the service with PREDICTION_STORE on and off.

`python -m bench.store_cost [--seconds 6] [--rounds 4]`. Both servers serve the default bundle on
CPU 0 at the same time (the idle one costs nothing); wrk on CPU 1 loads them in turn, A B B A, so
drift in the machine's load hits both alike. After each run (and a pause for the writer's last
flush) every thread's CPU time is read from /proc/<pid>/task/<tid>/schedstat (nanoseconds; the
threads carry their Python names, see bench.named_threads) and divided by the answered requests.
CPU time, not req/s: on a shared 2-core box it is the steadier measure. The minimum over rounds is
reported (noise only ever adds CPU: cache misses, frequency, a neighbour's interrupts).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.loadgen import run_wrk
from bench.servers import RunningServer, ServerSpec, free_port

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = (("1 row, c64", 1, 64), ("100 rows, c4", 100, 4))
GROUPS = {"python": "event loop", "inference": "inference", "store-writer": "store writer"}
SETTLE_SECONDS = 1.0  # the writer flushes every STORE_FLUSH_MS (200 ms): its last batch lands in the run


def _spec(store: bool, model_dir: Path, api_key: str, work: Path) -> ServerSpec:
    port = free_port()
    env = {
        "MODEL_DIR": str(model_dir), "APP_HOST": "127.0.0.1", "APP_PORT": str(port), "API_KEYS": f"bench:{api_key}",
        "LOG_LEVEL": "WARNING", "DATA_DIR": str(work / f"data-{port}"), "PREDICTION_STORE": "on" if store else "off",
    }  # fmt: skip
    command = [sys.executable, "-m", "bench.named_threads"]
    return ServerSpec("on" if store else "off", command, port, "/ready", env, ROOT)


def thread_cpu(pid: int) -> dict[str, tuple[float, int]]:
    """CPU seconds and context switches so far, summed per thread group (by the threads' names)."""
    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            ns = int((task / "schedstat").read_text().split()[0])
            status = (task / "status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        switches = sum(int(line.split()[1]) for line in status.splitlines() if line.endswith(tuple("0123456789"))
                       and "ctxt_switches" in line)  # fmt: skip
        group = GROUPS.get(name, "worker threads" if name.startswith("AnyIO") else "other")
        spent[group][0] += ns / 1e9
        spent[group][1] += switches
    return {group: (cpu, int(n)) for group, (cpu, n) in spent.items()}


def measure(model_dir: Path, seconds: float, rounds: int, work: Path) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Per scenario and server: one dict per round, µs of CPU per request for each thread group and in total."""
    api_key = secrets.token_hex(16)
    manifest = json.loads(next(model_dir.glob("manifest*.json")).read_text())
    example = manifest["example"]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with (
        RunningServer(_spec(True, model_dir, api_key, work), work / "on.log", 0) as on,
        RunningServer(_spec(False, model_dir, api_key, work), work / "off.log", 0) as off,
    ):
        on.wait_ready()
        off.wait_ready()
        for scenario, rows, connections in SCENARIOS:
            body = work / f"body-{rows}.json"
            body.write_text(json.dumps(example if rows == 1 else {"instances": [example] * rows}))
            results[scenario] = {"on": [], "off": []}
            for server in (on, off):  # warm-up
                run_wrk(server.spec.base_url + "/predict", body, {"X-API-Key": api_key}, connections, 2, cpu=1)
            for turn in range(rounds):
                for server in (on, off) if turn % 2 == 0 else (off, on):
                    time.sleep(SETTLE_SECONDS)
                    before = thread_cpu(server.process.pid)
                    url = server.spec.base_url + "/predict"
                    result = run_wrk(url, body, {"X-API-Key": api_key}, connections, seconds, cpu=1)
                    time.sleep(SETTLE_SECONDS)
                    after = thread_cpu(server.process.pid)
                    if result.non_2xx or result.socket_errors or not result.requests:
                        raise RuntimeError(f"{server.spec.name}: {result}")
                    n = result.requests
                    row = {g: (after[g][0] - before.get(g, (0.0, 0))[0]) / n * 1e6 for g in after}
                    row["total"] = sum(row.values())
                    row["switches"] = sum(after[g][1] - before.get(g, (0.0, 0))[1] for g in after) / n
                    row["req/s"] = result.requests_per_s
                    results[scenario][server.spec.name].append(row)
                    print(f"   {scenario:<13} store {server.spec.name:<3} " + "  ".join(
                        f"{k} {v:7.1f}" for k, v in sorted(row.items())), flush=True)  # fmt: skip
    return results


def table(results: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    """Minimum over rounds of each thread group's CPU µs per request, on / off."""
    lines = [
        "| scenario | thread | store on µs/request (min) | store off µs/request (min) | on − off |",
        "|---|---|---:|---:|---:|",
    ]
    for scenario, by_server in results.items():
        groups = sorted({g for rows in by_server.values() for row in rows for g in row} - {"req/s"})
        for group in [*(g for g in groups if g not in ("total", "switches")), "total", "switches"]:
            on = min(row.get(group, 0.0) for row in by_server["on"])
            off = min(row.get(group, 0.0) for row in by_server["off"])
            lines.append(f"| {scenario} | {group} | {on:.1f} | {off:.1f} | {on - off:+.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write every round's numbers here")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 cores: the servers on CPU 0, wrk on CPU 1")
    with tempfile.TemporaryDirectory(prefix="store-cost-") as work:
        results = measure(args.model_dir, args.seconds, args.rounds, Path(work))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    sys.stdout.write(table(results) + "\n")


if __name__ == "__main__":
    main()
