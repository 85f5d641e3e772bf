"""Fairness between callers: greedy batch callers beside single-row callers, each with its own API key.

One wrk process per caller (one connection each, pinned with the other load generators): first the
single-row callers alone (their unloaded p50), then the same single-row callers beside the batch
callers sending 1 000-row requests. Reported: the single rows' p50 loaded / unloaded (target ≤ 5×)
and each batch caller's share of the answered rows (no caller starves: every share is near 1/N).
"""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import POST_LUA, TIMEOUT, WrkResult, cpu_prefix, parse

BATCH_CALLERS, SINGLE_CALLERS, BATCH_ROWS = 8, 4, 1000
TARGET_RATIO = 5.0


@dataclass(frozen=True)
class Caller:
    name: str
    key: str


def callers(prefix: str = "fair") -> list[Caller]:
    """The scenario's callers: batch-0..7 and single-0..3, each with its own key."""
    import secrets

    names = [f"{prefix}-batch-{i}" for i in range(BATCH_CALLERS)]
    names += [f"{prefix}-single-{i}" for i in range(SINGLE_CALLERS)]
    return [Caller(name, secrets.token_hex(16)) for name in names]


def _wrk(url: str, body: Path, key: str, seconds: float, cpu: int) -> subprocess.Popen[str]:
    command = [*cpu_prefix(cpu), "wrk", "-t1", "-c1", f"-d{seconds:g}s", "--latency", "--timeout", TIMEOUT]
    command += ["-s", str(POST_LUA), "-H", f"X-API-Key: {key}", url, "--", str(body)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_all(runs: list[subprocess.Popen[str]], seconds: float) -> list[WrkResult]:
    results = []
    for run in runs:
        out, err = run.communicate(timeout=seconds + 60)
        if run.returncode != 0:
            raise RuntimeError(f"wrk failed ({run.returncode}): {err.strip() or out.strip()}")
        results.append(parse(out))
    return results


def _answered_rows_per_s(result: WrkResult, rows: int) -> float:
    return (result.requests - result.non_2xx) / result.seconds * rows if result.seconds else 0.0


def measure(
    url: str, single_body: Path, batch_body: Path, who: list[Caller], seconds: float, *, cpu: int
) -> dict[str, Any]:
    """Unloaded single-row p50, then loaded: the ratio, the batch callers' shares, the 429s."""
    batch, single = who[:BATCH_CALLERS], who[BATCH_CALLERS:]
    alone = _run_all([_wrk(url, single_body, c.key, seconds, cpu) for c in single], seconds)
    runs = [_wrk(url, batch_body, c.key, seconds, cpu) for c in batch]
    runs += [_wrk(url, single_body, c.key, seconds, cpu) for c in single]
    loaded = _run_all(runs, seconds)
    loaded_batch, loaded_single = loaded[:BATCH_CALLERS], loaded[BATCH_CALLERS:]
    unloaded_p50 = statistics.median(r.p50_ms or 0.0 for r in alone)
    loaded_p50 = statistics.median(r.p50_ms or 0.0 for r in loaded_single)
    batch_rows = [_answered_rows_per_s(r, BATCH_ROWS) for r in loaded_batch]
    total = sum(batch_rows) or 1.0
    return {
        "single_unloaded_p50_ms": unloaded_p50,
        "single_loaded_p50_ms": loaded_p50,
        "single_loaded_p99_ms": max(r.p99_ms or 0.0 for r in loaded_single),
        "ratio": loaded_p50 / unloaded_p50 if unloaded_p50 else None,
        "target_ratio": TARGET_RATIO,
        "single_requests_per_s": sum(r.requests_per_s for r in loaded_single),
        "single_non_2xx": sum(r.non_2xx for r in loaded_single),
        "batch_rows_per_s": sum(batch_rows),
        "batch_shares": [rows / total for rows in batch_rows],
        "batch_non_2xx": sum(r.non_2xx for r in loaded_batch),
        "batch_requests": sum(r.requests for r in loaded_batch),
    }


def render(bundle: str, result: dict[str, Any]) -> str:
    shares = result["batch_shares"]
    ratio = result["ratio"]
    verdict = "ok" if ratio is not None and ratio <= result["target_ratio"] else "OVER TARGET"
    return (
        f"| {bundle} | {result['single_unloaded_p50_ms']:.2f} | {result['single_loaded_p50_ms']:.2f} "
        f"| {ratio or 0:.1f}× ({verdict}) | {result['single_loaded_p99_ms']:.1f} "
        f"| {result['batch_rows_per_s']:,.0f} | {min(shares):.3f}–{max(shares):.3f} (fair 1/{len(shares)} = "
        f"{1 / len(shares):.3f}) | {result['batch_non_2xx']} of {result['batch_requests']} |"
    )


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    head = (
        f"| bundle | single-row p50 alone ms | p50 beside {BATCH_CALLERS} batch callers ms "
        f"| ratio (≤ {TARGET_RATIO:g}×) | single p99 ms | batch rows/s answered | batch shares | batch 429s |\n"
        "|---|---:|---:|---:|---:|---:|---|---:|"
    )
    return "\n".join([head, *(render(bundle, result) for bundle, result in rows)])
