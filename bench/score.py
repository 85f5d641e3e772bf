"""`make bench-score`: file scoring vs the user's offline one-shot pipeline and the predict floor, same run.

For each bundle (the demo one in models/demo/; the first user's real one when ../shared has it) a
CSV of --rows rows (drawn from the real CSV when present, blanks included) is scored in the
bundle's own environment, pinned to one CPU with one thread (taskset, OMP_NUM_THREADS=1), by
bench/score_worker.py: the offline pipeline, this scorer, and model predict alone on the
transformed matrix, interleaved, best of --repeat. The table shows rows per CPU-second (the
measure that survives a shared box) and per wall-second, the ratios, and where the scorer's time
goes. Written to bench/results/score.md and score.json.

    python -m bench.score [--rows 50000] [--repeat 3] [--only default|real] [--cpu 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.score_data import write_csv

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REAL_MODEL = Path(os.environ.get("BENCH_REAL_MODEL", SHARED / "real-model"))
REAL_CSV = Path(os.environ.get("BENCH_CSV", SHARED / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"))


def _python_for(bundle: str, directory: Path) -> str:
    if bundle == "default":
        return sys.executable
    env = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ensure_env.py"), "--dev", str(directory)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    return str(Path(env) / "bin" / "python")


def _measure(bundle: str, directory: Path, csv: Path, work: Path, repeat: int, cpu: int | None) -> dict[str, Any]:
    command = [_python_for(bundle, directory), str(ROOT / "bench" / "score_worker.py"), str(directory), str(csv),
               str(work), str(repeat)]
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["bundle"] = bundle
    return result


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| bundle | rows | offline rows/CPU-s | scorer rows/CPU-s | predict floor rows/CPU-s | scorer × offline "
        "| scorer time ÷ floor | offline time ÷ floor | wall rows/s (offline / scorer / floor) | identical |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        cpu, wall = r["rows_per_cpu_second"], r["rows_per_wall_second"]
        lines.append(
            f"| {r['bundle']} ({r['version']}) | {r['rows']:,} | {cpu['offline']:,.0f} | {cpu['scorer']:,.0f} "
            f"| {cpu['floor']:,.0f} | {cpu['scorer'] / cpu['offline']:.2f}× | {cpu['floor'] / cpu['scorer']:.2f} "
            f"| {cpu['floor'] / cpu['offline']:.2f} | {wall['offline']:,.0f} / {wall['scorer']:,.0f} / "
            f"{wall['floor']:,.0f} | {'yes' if r['identical'] else 'NO'} |"
        )
    lines += ["", "Where the scorer's CPU time goes (one profiled run, seconds; profiling inflates Python calls):", ""]
    for r in results:
        phases = ", ".join(f"{name} {seconds:.2f}" for name, seconds in r["phases"].items())
        lines.append(f"- {r['bundle']}: {phases}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("default", "real"))
    parser.add_argument("--cpu", type=int, default=min(1, (os.cpu_count() or 1) - 1))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    bundles = {"default": ROOT / "models" / "demo", "real": REAL_MODEL}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        work = Path(tmp)
        csv = write_csv(work / "input.csv", args.rows, real_csv=REAL_CSV)
        for bundle, directory in bundles.items():
            if args.only and bundle != args.only:
                continue
            if not directory.is_dir():
                print(f"SKIP {bundle}: {directory} is absent")
                continue
            print(f"scoring {args.rows:,} rows with the {bundle} bundle (best of {args.repeat}) ...", flush=True)
            results.append(_measure(bundle, directory, csv, work, args.repeat, args.cpu))
    report = render(results)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "score.md").write_text(report)
    (args.out / "score.json").write_text(json.dumps(results, indent=2))
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
