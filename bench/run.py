"""`make bench`: this service vs the tutorial baseline and MLServer, same machine, same run.

For each bundle (the demo one in models/demo/, and the first user's real one when ../shared has it)
each server is started pinned to CPU 0, checked to answer the benchmark records with the service's
probabilities, then loaded by wrk pinned to CPU 1: single-row requests at 1, 16 and 64
connections and 100-row requests at 4, each after a warm-up. The service is also loaded over the
Open Inference Protocol (its V2 infer route: 1 row at 1 and 64 connections, 100 rows at 4), in
the same process right after /predict. Then the in-process floors run in the
bundle's environment. One table is printed and written to bench/results/ (markdown + JSON).

    python -m bench.run [--quick] [--only default|real] [--no-mlserver] [--out DIR]

Env: BENCH_SECONDS (per scenario, default 10), BENCH_WARMUP (default 3), BENCH_REAL_MODEL,
BENCH_CSV (defaults under ../shared).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import connections, payloads
from bench.loadgen import cpu_prefix, run_wrk, wrk_available
from bench.mlserver_setup import MODEL_NAME, prepare
from bench.report import BASELINE, MLSERVER, SERVICE, SERVICE_STORE_OFF, SERVICE_V2, render
from bench.servers import RunningServer, ServerSpec, free_port

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SERVER_CPU, WRK_CPU = 0, 1
# After each wrk run, one request must come back this fast (an idle server's latency is far below).
SETTLED_LATENCY, SETTLE_TIMEOUT = 0.25, 120.0


@dataclass(frozen=True)
class Scenario:
    name: str
    rows: int
    connections: int
    query: str = ""  # appended to the path (the service's own options)


SCENARIOS = (
    Scenario("1 row, c1", 1, 1),
    Scenario("1 row, c16", 1, 16),
    Scenario("1 row, c64", 1, 64),
    Scenario("100 rows, c4", payloads.BATCH_ROWS, 4),
)
# The same service over the Open Inference Protocol (POST /v2/models/{name}/infer), right after /predict.
V2_SCENARIOS = (SCENARIOS[0], SCENARIOS[2], SCENARIOS[3])
# Reason codes (POST /predict?explain=3), this service only, beside the plain "1 row, c1" above. The
# per-row cost of a batch is in the floors (explaining 100 rows of the real model takes seconds).
EXPLAIN_SCENARIOS = (Scenario("1 row, c1, explain=3", 1, 1, "?explain=3"),)


@dataclass(frozen=True)
class Bundle:
    """A bundle copied to a temporary directory, and the Python environment that serves it."""

    name: str
    directory: Path
    python: Path


@dataclass
class Reference:
    """The service's view of a bundle: the benchmark records and its answers for them."""

    positive: str
    preprocessing: str
    records: dict[int, list[dict[str, Any]]]
    probabilities: dict[int, list[float]]


def _copy_bundle(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file():
            shutil.copyfile(path, target / path.name)
    return target


def _bundles(only: str | None, work: Path) -> tuple[list[Bundle], list[str]]:
    bundles, skipped = [], []
    if only in (None, "default"):
        demo = _copy_bundle(ROOT / "models" / "demo", work / "default")
        bundles.append(Bundle("default", demo, Path(sys.executable)))
    if only in (None, "real"):
        real = Path(os.environ.get("BENCH_REAL_MODEL", SHARED / "real-model"))
        if real.is_dir():
            copy = _copy_bundle(real, work / "real")
            print(f"real bundle: environment from scripts/ensure_env.py (built on first use) for {real}", flush=True)
            env = subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "ensure_env.py"), str(copy)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            bundles.append(Bundle("real", copy, Path(env) / "bin" / "python"))
        else:
            skipped.append(f"real bundle skipped: {real} is absent")
    return bundles, skipped


class Bench:
    """One run: its settings, and everything measured so far."""

    def __init__(self, seconds: float, warmup: float, work: Path, floors_budget: float) -> None:
        self.seconds, self.warmup, self.work, self.floors_budget = seconds, warmup, work, floors_budget
        self.api_key = secrets.token_hex(24)
        self.measurements: list[dict[str, Any]] = []
        self.servers: list[dict[str, Any]] = []
        self.floors: dict[str, list[dict[str, Any]]] = {}
        self.guard: list[dict[str, Any]] = []
        self.guard_floor: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        print(f"WARNING: {message}", flush=True)

    # --- servers -------------------------------------------------------------------------
    def service_spec(self, bundle: Bundle, *, store: bool = True) -> ServerSpec:
        """The service as deployed by default (the embedded store on, in a fresh DATA_DIR), or with the store off."""
        port = free_port()
        env = {
            "MODEL_DIR": str(bundle.directory),
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            "API_KEYS": f"bench:{self.api_key}",
            "LOG_LEVEL": "WARNING",
            "MODEL_NAME": MODEL_NAME,  # its V2 name: the one MLServer serves under
            "DATA_DIR": str(self.work / f"data-{bundle.name}-{port}"),
            "PREDICTION_STORE": "on" if store else "off",
        }
        name = SERVICE if store else SERVICE_STORE_OFF
        return ServerSpec(name, [str(bundle.python), "-m", "api"], port, "/ready", env, ROOT)

    def baseline_spec(self, bundle: Bundle) -> ServerSpec:
        port = free_port()
        command = [str(bundle.python), "-m", "uvicorn", "bench.baseline_app:app", "--host", "127.0.0.1"]
        # Access logs off, as for the service: a log line per request is not what is compared.
        command += ["--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]
        return ServerSpec(BASELINE, command, port, "/ready", {"MODEL_DIR": str(bundle.directory)}, ROOT)

    def mlserver_spec(self, bundle: Bundle) -> ServerSpec:
        port = free_port()
        deployment = prepare(bundle.directory, self.work / f"mlserver-{bundle.name}", port, free_port())
        ready = f"/v2/models/{MODEL_NAME}/ready"
        return ServerSpec(MLSERVER, deployment.command, port, ready, {}, deployment.root)

    # --- one server ----------------------------------------------------------------------
    def run_server(self, bundle: Bundle, spec: ServerSpec, reference: Reference | None) -> Reference | None:
        """Start, check answers, load with every scenario, record RSS; returns the service's reference."""
        print(f"\n== {bundle.name} / {spec.name}", flush=True)
        log = self.work / f"{bundle.name}-{spec.name}.log"
        record: dict[str, Any] = {"bundle": bundle.name, "server": spec.name}
        self.servers.append(record)
        with RunningServer(spec, log, SERVER_CPU) as server:
            record["ready_seconds"] = server.wait_ready()
            headers = {"X-API-Key": self.api_key} if spec.name in (SERVICE, SERVICE_STORE_OFF) else {}
            if spec.name == SERVICE:
                reference = self._reference(bundle, spec, headers)
                record["note"] = f"preprocessing: {reference.preprocessing}"
            assert reference is not None
            path, bodies = self._bodies(bundle, spec.name, reference)
            record["answers"] = self._check(bundle, spec, path, headers, reference)
            own = SCENARIOS + (EXPLAIN_SCENARIOS if spec.name == SERVICE else ())
            self._load(server, bundle, spec, spec.name, path, bodies, own, headers)
            if spec.name == SERVICE:
                v2 = {"bundle": bundle.name, "server": SERVICE_V2, "note": "the same process, after /predict"}
                self.servers.append(v2)
                print(f"== {bundle.name} / {SERVICE_V2}", flush=True)
                path, bodies = self._bodies(bundle, SERVICE_V2, reference)
                v2["answers"] = self._check(bundle, spec, path, headers, reference, kind=SERVICE_V2)
                self._load(server, bundle, spec, SERVICE_V2, path, bodies, V2_SCENARIOS, headers)
            record["rss_mb"] = server.rss_mb()
        print(
            f"   ready after {record['ready_seconds']:.2f} s; RSS after run {record['rss_mb'] or 0:.0f} MiB", flush=True
        )
        return reference

    def _load(
        self,
        server: RunningServer,
        bundle: Bundle,
        spec: ServerSpec,
        kind: str,
        path: str,
        bodies: dict[int, Path],
        scenarios: tuple[Scenario, ...],
        headers: dict[str, str],
    ) -> None:
        """Every scenario against one endpoint, each after a warm-up; measurements recorded under ``kind``."""
        for scenario in scenarios:
            url = spec.base_url + path + scenario.query
            body = bodies[scenario.rows]
            if self.warmup > 0:
                run_wrk(url, body, headers, scenario.connections, self.warmup, cpu=WRK_CPU)
                self._settle(bundle, spec, url, bodies[1], headers)
            cpu_before = server.cpu_seconds()
            result = run_wrk(url, body, headers, scenario.connections, self.seconds, cpu=WRK_CPU)
            self._settle(bundle, spec, url, bodies[1], headers)
            cpu_after = server.cpu_seconds()
            # Server CPU per answered request: far less sensitive to a busy machine than req/s.
            cpu_us = (
                (cpu_after - cpu_before) / result.requests * 1e6
                if cpu_before is not None and cpu_after is not None and result.requests
                else None
            )
            row: dict[str, Any] = {"bundle": bundle.name, "server": kind, "scenario": scenario.name}
            row |= {"rows": scenario.rows, "connections": scenario.connections, "cpu_us_per_request": cpu_us}
            self.measurements.append({**row, **result.to_dict(), "rows_per_s": result.requests_per_s * scenario.rows})
            print(
                f"   {scenario.name:<14} {result.requests_per_s:9.1f} req/s  p50 {result.p50_ms or 0:8.2f} ms  "
                f"p99 {result.p99_ms or 0:9.1f} ms  non-2xx {result.non_2xx}  socket errors {result.socket_errors}",
                flush=True,
            )

    def _settle(self, bundle: Bundle, spec: ServerSpec, url: str, body: Path, headers: dict[str, str]) -> None:
        """Wait until requests wrk abandoned at its deadline are worked off, so they don't eat the next run."""
        payload = json.loads(body.read_text())
        deadline = time.perf_counter() + SETTLE_TIMEOUT
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            payloads.post_json(url, payload, headers, timeout=SETTLE_TIMEOUT)
            if time.perf_counter() - started < SETTLED_LATENCY:
                return
        self.warn(f"{bundle.name} / {spec.name}: still busy {SETTLE_TIMEOUT:.0f} s after a load run")

    def _reference(self, bundle: Bundle, spec: ServerSpec, headers: dict[str, str]) -> Reference:
        described = payloads.get_json(spec.base_url + "/model", headers)
        example = described["input_schema"]["example"]
        csv_path = Path(os.environ.get("BENCH_CSV", SHARED / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"))
        many = payloads.csv_records(csv_path, example) if csv_path.is_file() else [example] * payloads.BATCH_ROWS
        records = {1: [example], payloads.BATCH_ROWS: many}
        positive = str(described["classes"][-1])
        probabilities = {}
        for rows, batch in records.items():
            status, answer = payloads.post_json(spec.base_url + "/predict", payloads.service_body(batch), headers)
            if status != 200:
                raise RuntimeError(f"{bundle.name}: the service answered {status} for its own benchmark body: {answer}")
            probabilities[rows] = payloads.positive_probabilities(SERVICE, answer, positive)
        (self.work / f"{bundle.name}-records.json").write_text(json.dumps({"one": example, "many": many}))
        preprocessing = str(described.get("preprocessing", {}).get("path", "?"))
        return Reference(positive, preprocessing, records, probabilities)

    def _bodies(self, bundle: Bundle, kind: str, reference: Reference) -> tuple[str, dict[int, Path]]:
        path = f"/v2/models/{MODEL_NAME}/infer" if kind in (MLSERVER, SERVICE_V2) else "/predict"
        build = _BUILDERS[kind]
        bodies = {}
        for rows, records in reference.records.items():
            bodies[rows] = self.work / f"{bundle.name}-{kind}-{rows}.json"
            bodies[rows].write_text(json.dumps(build(records)))
        return path, bodies

    def _check(
        self,
        bundle: Bundle,
        spec: ServerSpec,
        path: str,
        headers: dict[str, str],
        ref: Reference,
        kind: str | None = None,
    ) -> str:
        """Compare this server's P(positive) on the benchmark records with the service's, exactly."""
        kind = kind or spec.name
        for rows, records in ref.records.items():
            status, answer = payloads.post_json(spec.base_url + path, _BUILDERS[kind](records), headers)
            if status != 200:
                self.warn(f"{bundle.name} / {kind}: {rows}-row request answered {status}: {str(answer)[:300]}")
                return f"no ({rows} rows: HTTP {status})"
            got = payloads.positive_probabilities(kind, answer, ref.positive)
            want = ref.probabilities[rows]
            if got != want:
                gap = max((abs(a - b) for a, b in zip(got, want, strict=False)), default=float("nan"))
                self.warn(
                    f"{bundle.name} / {kind}: P(positive) differs from the service's ({rows} rows, |Δ| {gap:.3g})"
                )
                return f"no (max abs diff {gap:.3g})"
        return "yes (1 and 100 rows, exact)"

    # --- floors --------------------------------------------------------------------------
    def run_floors(self, bundle: Bundle) -> None:
        print(f"\n== {bundle.name} / in-process floors", flush=True)
        command = [*cpu_prefix(SERVER_CPU), str(bundle.python), "-m", "bench.floors", "--json"]
        command += ["--model-dir", str(bundle.directory), "--budget", str(self.floors_budget)]
        records = self.work / f"{bundle.name}-records.json"
        if records.is_file():
            command += ["--records", str(records)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            self.warn(f"{bundle.name}: floors failed: {done.stderr.strip().splitlines()[-1:]}")
            return
        self.floors[bundle.name] = json.loads(done.stdout.strip().splitlines()[-1])


_BUILDERS = {
    SERVICE: payloads.service_body,
    SERVICE_STORE_OFF: payloads.service_body,
    BASELINE: payloads.service_body,
    MLSERVER: payloads.mlserver_body,
    SERVICE_V2: payloads.v2_body,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="This service vs the tutorial baseline and MLServer, same run.")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per scenario, no MLServer")
    parser.add_argument("--only", choices=("default", "real"), help="one bundle only")
    parser.add_argument("--no-mlserver", action="store_true", help="skip MLServer")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where latest.md/json go")
    args = parser.parse_args(argv)
    if not wrk_available():
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    seconds = 2.0 if args.quick else float(os.environ.get("BENCH_SECONDS", "10"))
    warmup = 1.0 if args.quick else float(os.environ.get("BENCH_WARMUP", "3"))
    with_mlserver = not (args.quick or args.no_mlserver)
    started, clock = datetime.now(UTC), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelo-bench-") as tmp:
        work = Path(tmp)
        bench = Bench(seconds, warmup, work, floors_budget=0.2 if args.quick else 0.6)
        bundles, skipped = _bundles(args.only, work)
        for bundle in bundles:
            reference = bench.run_server(bundle, bench.service_spec(bundle), None)
            if bundle.name == "default":
                print("\n== default / connection guard: with and without, interleaved", flush=True)
                body = work / "default-service-1.json"
                bench.guard = connections.measure(
                    bundle.directory, body, bench.api_key, seconds, work, root=ROOT, cpus=(SERVER_CPU, WRK_CPU)
                )
                bench.guard_floor = connections.protocol_floor(rounds=3 if seconds < 5 else 9)
            bench.run_server(bundle, bench.service_spec(bundle, store=False), reference)
            bench.run_server(bundle, bench.baseline_spec(bundle), reference)
            if with_mlserver:
                try:
                    spec = bench.mlserver_spec(bundle)
                except (subprocess.CalledProcessError, OSError) as exc:
                    detail = getattr(exc, "stderr", None) or str(exc)
                    skipped.append(f"{bundle.name} / MLServer not run: {str(detail).strip().splitlines()[-1:]}")
                else:
                    try:
                        bench.run_server(bundle, spec, reference)
                    except RuntimeError as exc:
                        bench.warn(f"{bundle.name} / MLServer failed: {exc}")
            bench.run_floors(bundle)
    for line in skipped:
        bench.warn(line)
    results = {
        "started": started.isoformat(timespec="seconds"),
        "elapsed_seconds": time.perf_counter() - clock,
        "setup": {
            "measure_seconds": seconds,
            "warmup_seconds": warmup,
            "server_cpu": " ".join(cpu_prefix(SERVER_CPU)) or "unpinned",
            "wrk_cpu": " ".join(cpu_prefix(WRK_CPU)) or "unpinned",
            "quick": args.quick,
        },
        "measurements": bench.measurements,
        "servers": bench.servers,
        "floors": bench.floors,
        "connection_guard": bench.guard,
        "connection_guard_floor": bench.guard_floor,
        "warnings": bench.warnings,
    }
    report = render(results)
    if bench.guard:
        report += "\n## Connection guard cost (same app, same run)\n" + connections.table(bench.guard) + "\n"
        report += "\n" + connections.floor_table(bench.guard_floor) + "\n"
    print("\n" + report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(report)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"written: {args.out / 'latest.md'}, {args.out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
