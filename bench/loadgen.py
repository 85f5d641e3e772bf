"""wrk as the load generator: one pinned thread, a fixed POST body, and its report parsed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

POST_LUA = Path(__file__).resolve().parent / "wrk" / "post.lua"
# Long enough that a slow server's tail shows up as latency, not as hidden timeout errors.
TIMEOUT = "30s"
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    socket_errors: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def cpu_prefix(cpu: int) -> list[str]:
    """`taskset -c <cpu>` when that core is ours to use, else nothing (a 1-core box runs unpinned)."""
    if shutil.which("taskset") and cpu in os.sched_getaffinity(0) and len(os.sched_getaffinity(0)) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def _ms(text: str) -> float:
    match = re.fullmatch(_DURATION, text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse(output: str) -> WrkResult:
    """wrk's text report → numbers (latency in ms)."""
    percentiles = {
        int(m[1]): _ms(m[2] + m[3]) for m in re.finditer(rf"^\s+(50|99)(?:\.0+)?%\s+{_DURATION}", output, re.M)
    }
    total = re.search(rf"(\d+) requests in {_DURATION}", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if total is None or rate is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = int(total[1])
    return WrkResult(
        requests=requests,
        seconds=_ms(total[2] + total[3]) / 1000,
        requests_per_s=float(rate[1]),
        p50_ms=percentiles.get(50) if requests else None,
        p99_ms=percentiles.get(99) if requests else None,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(
    url: str, body: Path, headers: dict[str, str], connections: int, seconds: float, *, cpu: int = 1
) -> WrkResult:
    """One wrk run: one thread pinned to `cpu`, `connections` keep-alive connections, POSTing `body`."""
    command = [*cpu_prefix(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    command += ["--timeout", TIMEOUT, "-s", str(POST_LUA)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += [url, "--", str(body)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return parse(done.stdout)
