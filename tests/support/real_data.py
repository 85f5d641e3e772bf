"""The first user's CSV rows as a client sends them, and their offline probabilities per model version."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support.live_server import ROOT

SHARED = ROOT.parent / "shared"
REAL_CSV = SHARED / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
VERSIONS = ("20250717_214053", "20250717_214252")
_NUMERIC = {"tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"}


def real_records() -> list[dict[str, Any]]:
    """Every CSV row as a client sends it: numbers as numbers, blank TotalCharges as null, no label."""
    records = []
    with REAL_CSV.open(newline="") as handle:
        for row in csv.DictReader(handle):
            row.pop("Churn")
            record: dict[str, Any] = dict(row)
            for name in _NUMERIC:
                text = row[name].strip()
                record[name] = None if not text else (int(text) if name in ("tenure", "SeniorCitizen") else float(text))
            records.append(record)
    return records


def offline_probabilities(python: str, bundle: Path, out: Path) -> dict[str, list[float]]:
    """P(churn) of every CSV row per version, computed the user's way in the bundle's environment."""
    subprocess.run(
        [python, str(ROOT / "tests" / "support" / "offline_reference.py"), str(bundle), str(REAL_CSV), str(out)],
        check=True,
    )
    result: dict[str, list[float]] = json.loads(out.read_text())
    return result
