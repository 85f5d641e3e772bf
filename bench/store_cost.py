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
import contextlib
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
NOT_THE_SERVICE = "bench-gc-report"  # named_threads' own thread: left out
SETTLE_SECONDS = 1.0  # the writer flushes every STORE_FLUSH_MS (200 ms): its last batch lands in the run


def _spec(name: str, store: bool, source: Path, model_dir: Path, api_key: str, work: Path) -> ServerSpec:
    port = free_port()
    env = {
        "MODEL_DIR": str(model_dir), "APP_HOST": "127.0.0.1", "APP_PORT": str(port), "API_KEYS": f"bench:{api_key}",
        "LOG_LEVEL": "WARNING", "DATA_DIR": str(work / f"data-{port}"), "PREDICTION_STORE": "on" if store else "off",
        "PYTHONPATH": str(source), "BENCH_GC_FILE": str(work / f"gc-{port}.json"),
    }  # fmt: skip
    # Run from `source`'s directory: `-m` imports api/ from there, the thread-naming wrapper from here.
    command = [sys.executable, str(Path(__file__).resolve().parent / "named_threads.py")]
    return ServerSpec(name, command, port, "/ready", env, source)


def gc_seconds(spec: ServerSpec) -> float:
    """Seconds the server's garbage collector has run so far (every generation, any thread)."""
    path = Path(spec.env["BENCH_GC_FILE"])
    return float(sum(json.loads(path.read_text())["seconds"])) if path.exists() else 0.0


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
        switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)
        if name == NOT_THE_SERVICE:
            continue
        group = GROUPS.get(name, "worker threads" if name.startswith("AnyIO") else "other")
        spent[group][0] += ns / 1e9
        spent[group][1] += switches
    return {group: (cpu, int(n)) for group, (cpu, n) in spent.items()}


Rounds = dict[str, dict[str, list[dict[str, float]]]]  # scenario -> server -> one dict per round


def measure(specs: list[ServerSpec], model_dir: Path, api_key: str, seconds: float, rounds: int, work: Path) -> Rounds:
    """Per scenario and server: one dict per round, µs of CPU per request for each thread group and in total."""
    example = json.loads(next(model_dir.glob("manifest*.json")).read_text())["example"]
    results: Rounds = {}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(RunningServer(spec, work / f"{spec.name}.log", 0)) for spec in specs]
        for server in servers:
            server.wait_ready()
        for scenario, rows, connections in SCENARIOS:
            body = work / f"body-{rows}.json"
            body.write_text(json.dumps(example if rows == 1 else {"instances": [example] * rows}))
            results[scenario] = {server.spec.name: [] for server in servers}
            for server in servers:  # warm-up
                run_wrk(server.spec.base_url + "/predict", body, {"X-API-Key": api_key}, connections, 2, cpu=1)
            for turn in range(rounds):
                for server in servers if turn % 2 == 0 else servers[::-1]:  # A B C, C B A, ...
                    time.sleep(SETTLE_SECONDS)
                    before, gc_before = thread_cpu(server.process.pid), gc_seconds(server.spec)
                    url = server.spec.base_url + "/predict"
                    result = run_wrk(url, body, {"X-API-Key": api_key}, connections, seconds, cpu=1)
                    time.sleep(SETTLE_SECONDS)
                    after, gc_after = thread_cpu(server.process.pid), gc_seconds(server.spec)
                    if result.non_2xx or result.socket_errors or not result.requests:
                        raise RuntimeError(f"{server.spec.name}: {result}")
                    n = result.requests
                    row = {g: (after[g][0] - before.get(g, (0.0, 0))[0]) / n * 1e6 for g in after}
                    row["total"] = sum(row.values())  # before the entries that are not threads
                    row["(of which gc)"] = (gc_after - gc_before) / n * 1e6
                    row["switches"] = sum(after[g][1] - before.get(g, (0.0, 0))[1] for g in after) / n
                    row["req/s"] = result.requests_per_s
                    results[scenario][server.spec.name].append(row)
                    print(f"   {scenario:<13} {server.spec.name:<12} " + "  ".join(
                        f"{k} {v:7.1f}" for k, v in sorted(row.items())), flush=True)  # fmt: skip
    return results


def table(results: Rounds) -> str:
    """Minimum over rounds of each thread group's CPU µs per request, per server; the store's cost against off."""
    names = list(next(iter(results.values())))
    lines = [
        "| scenario | thread | " + " | ".join(f"{name} µs/request" for name in names) + " |",
        "|---|---|" + "---:|" * len(names),
    ]
    for scenario, by_server in results.items():
        groups = sorted({g for rows in by_server.values() for row in rows for g in row} - {"req/s"})
        last = ("total", "(of which gc)", "switches")
        for group in [*(g for g in groups if g not in last), *last]:
            cells = [min(row.get(group, 0.0) for row in by_server[name]) for name in names]
            lines.append(f"| {scenario} | {group} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
        off = min(row["total"] for row in by_server["off"])
        for name in names:
            if name != "off":
                on = min(row["total"] for row in by_server[name])
                lines.append(f"| {scenario} | **{name}: store cost** | {on - off:+.1f} µs = {on / off - 1:+.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--compare", type=Path, action="append", default=[],
        help="also serve, store on, the api/ of this source tree (e.g. `git archive` of an older commit)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write every round's numbers here")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 cores: the servers on CPU 0, wrk on CPU 1")
    api_key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="store-cost-") as scratch:
        work = Path(scratch)
        specs = [_spec("on", True, ROOT, args.model_dir, api_key, work),
                 _spec("off", False, ROOT, args.model_dir, api_key, work)]  # fmt: skip
        for tree in args.compare:
            specs.append(_spec(f"on {tree.name}", True, tree.resolve(), args.model_dir, api_key, work))
        results = measure(specs, args.model_dir, api_key, args.seconds, args.rounds, work)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    sys.stdout.write(table(results) + "\n")


if __name__ == "__main__":
    main()
