"""Scoring streams: peak memory for a 2 000 000-row file is that of a 200 000-row file (it does not grow with size).

Each file is scored in a fresh interpreter that reports its own peak RSS (getrusage), so the
numbers are the scorer's alone. The default bundle is used: it is committed, so this runs anywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.score_data import write_csv
from tests.support.live_server import ROOT

pytestmark = pytest.mark.slow

SMALL, LARGE = 200_000, 2_000_000
_RUN = """
import json, resource, sys
from pathlib import Path
from api.config import Settings
from api.scoring.job import score_file
from api.scoring.model import load_for_scoring
model = load_for_scoring(Settings(model_dir=Path(sys.argv[1])))
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = score_file(model, Path(sys.argv[2]), Path(sys.argv[3]), chunk_rows=20_000, progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": summary.scored, "loaded_kib": loaded, "peak_kib": peak, "seconds": summary.seconds}))
"""


def _peak(bundle: Path, source: Path, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(bundle), str(source), str(out)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_peak_memory_does_not_grow_with_the_file(default_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="the scoring dependencies (requirements-scoring.txt) are not installed")
    small = _peak(default_bundle, write_csv(tmp_path / "small.csv", SMALL), tmp_path / "small.parquet")
    large_csv = write_csv(tmp_path / "large.csv", LARGE)
    large = _peak(default_bundle, large_csv, tmp_path / "large.parquet")
    assert (small["rows"], large["rows"]) == (SMALL, LARGE)
    growth = large["peak_kib"] - small["peak_kib"]
    sys.stderr.write(
        f"peak RSS: {SMALL} rows {small['peak_kib'] / 1024:.0f} MiB, {LARGE} rows {large['peak_kib'] / 1024:.0f} MiB "
        f"(file {large_csv.stat().st_size / 2**20:.0f} MiB; {LARGE / large['seconds']:,.0f} rows/s)\n"
    )
    # Ten times the rows, the same chunks: a few MiB of allocator noise at most, never the file's size.
    assert growth < 0.1 * small["peak_kib"], (small, large)
