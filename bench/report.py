"""The run's tables as markdown: load results with ratios, servers, and in-process floors."""

from __future__ import annotations

from typing import Any

SERVICE, BASELINE, MLSERVER = "service", "baseline", "mlserver"
SERVICE_STORE_OFF = "service-store-off"
SERVICE_V2 = "service-v2"  # the same process as SERVICE, over the Open Inference Protocol
SERVER_LABELS = {
    SERVICE: "this service",
    SERVICE_STORE_OFF: "this service, PREDICTION_STORE=off",
    SERVICE_V2: "this service, V2 infer",
    BASELINE: "tutorial baseline",
    MLSERVER: "MLServer (adaptive batching)",
}


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float, reference: float | None) -> str:
    return "–" if not reference else f"{value / reference:.2f}×"


def load_table(measurements: list[dict[str, Any]]) -> str:
    """One row per (bundle, server, scenario); ratios of req/s against the baseline and MLServer."""
    rate = {(m["bundle"], m["server"], m["scenario"]): m["requests_per_s"] for m in measurements}
    lines = [
        "| bundle | server | scenario | req/s | p50 ms | p99 ms | rows/s | non-2xx | sock err "
        "| × baseline | × MLServer | × /predict |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        key = (m["bundle"], m["scenario"])
        v2 = m["server"] == SERVICE_V2
        lines.append(
            f"| {m['bundle']} | {SERVER_LABELS.get(m['server'], m['server'])} | {m['scenario']} "
            f"| {_num(m['requests_per_s'], 1)} | {_num(m['p50_ms'], 2)} | {_num(m['p99_ms'], 1)} "
            f"| {_num(m['rows_per_s'])} | {m['non_2xx']} | {m['socket_errors']} "
            f"| {_ratio(m['requests_per_s'], rate.get((key[0], BASELINE, key[1])))} "
            f"| {_ratio(m['requests_per_s'], rate.get((key[0], MLSERVER, key[1])))} "
            f"| {_ratio(m['requests_per_s'], rate.get((key[0], SERVICE, key[1]))) if v2 else ''} |"
        )
    return "\n".join(lines)


def explain_table(measurements: list[dict[str, Any]]) -> str:
    """This service with ?explain=3 against the same rows without it, in the same run."""
    rate = {(m["bundle"], m["server"], m["scenario"]): m for m in measurements}
    lines = [
        "| bundle | scenario | req/s plain | req/s explain=3 | × plain | explain cost ms / row |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for m in measurements:
        plain_name, _, query = m["scenario"].rpartition(", explain=")
        plain = rate.get((m["bundle"], SERVICE, plain_name)) if query and m["server"] == SERVICE else None
        if plain is None or not m["requests_per_s"] or not plain["requests_per_s"]:
            continue
        # Added latency per row, from the medians: what a caller waits longer per explained row.
        extra = ((m["p50_ms"] or 0) - (plain["p50_ms"] or 0)) / m["rows"]
        lines.append(
            f"| {m['bundle']} | {plain_name} | {_num(plain['requests_per_s'], 1)} | {_num(m['requests_per_s'], 1)} "
            f"| {_ratio(m['requests_per_s'], plain['requests_per_s'])} | {extra:,.2f} |"
        )
    return "\n".join(lines)


def store_table(measurements: list[dict[str, Any]]) -> str:
    """The prediction store's cost: req/s with the default store on against the same service with it off."""
    by = {(m["bundle"], m["server"], m["scenario"]): m for m in measurements}
    lines = [
        "| bundle | scenario | store on req/s | store off req/s | on / off "
        "| server CPU µs/request on | off | off / on |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (bundle, server, scenario), on in by.items():
        off = by.get((bundle, SERVICE_STORE_OFF, scenario))
        if server != SERVICE or off is None or not off["requests_per_s"]:
            continue
        cpu_on, cpu_off = on.get("cpu_us_per_request"), off.get("cpu_us_per_request")
        cpu_ratio = f"{cpu_off / cpu_on:.2f}" if cpu_on and cpu_off else "–"
        lines.append(
            f"| {bundle} | {scenario} | {_num(on['requests_per_s'], 1)} | {_num(off['requests_per_s'], 1)} "
            f"| {on['requests_per_s'] / off['requests_per_s']:.2f} | {_num(cpu_on, 0)} | {_num(cpu_off, 0)} "
            f"| {cpu_ratio} |"
        )
    return "\n".join(lines)


def servers_table(servers: list[dict[str, Any]]) -> str:
    lines = [
        "| bundle | server | start → ready s | RSS after run MiB | same P(positive) as the service | notes |",
        "|---|---|---:|---:|---|---|",
    ]
    for s in servers:
        lines.append(
            f"| {s['bundle']} | {SERVER_LABELS.get(s['server'], s['server'])} | {_num(s.get('ready_seconds'), 2)} "
            f"| {_num(s.get('rss_mb'), 0)} | {s.get('answers', '–')} | {s.get('note', '')} |"
        )
    return "\n".join(lines)


def floors_table(floors: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| bundle | step | rows | µs / call | µs / row |", "|---|---|---:|---:|---:|"]
    for bundle, rows in floors.items():
        lines += [
            f"| {bundle} | {r['step']} | {r['rows']} | {r['us_per_call']:,.0f} | {r['us_per_row']:,.1f} |" for r in rows
        ]
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    """The whole report: setup line, the load table, servers, floors, warnings."""
    setup = results["setup"]
    parts = [
        f"# Benchmark {results['started']}",
        f"{setup['measure_seconds']:g} s per scenario after {setup['warmup_seconds']:g} s warm-up; "
        f"server pinned to {setup['server_cpu']}, wrk (1 thread) to {setup['wrk_cpu']}; "
        f"whole run {results['elapsed_seconds']:.0f} s.",
        "",
        load_table(results["measurements"]),
        "",
        "## The prediction store's cost (default SQLite store on vs off, same run)",
        store_table(results["measurements"]),
        "",
        "## Reason codes (this service, same run)",
        explain_table(results["measurements"]),
        "",
        "## Servers",
        servers_table(results["servers"]),
        "",
        "## In-process floors (one core, median per call)",
        floors_table(results["floors"]),
    ]
    if results["warnings"]:
        parts += ["", "## Warnings", *(f"- {w}" for w in results["warnings"])]
    return "\n".join(parts) + "\n"
