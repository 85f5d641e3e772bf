"""Live accuracy from the store: every replica computes it from the same rows, so they all agree."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from api.errors import InvalidInputError
from api.monitoring.performance import LabelledPrediction, PerformanceWindow
from api.store.store import PredictionStore

# A count of labelled predictions (`500`) or a period (`30m`, `24h`, `7d`); the route publishes the
# same pattern, so what the document allows is exactly what is read.
WINDOW_PATTERN = r"^(?:[1-9][0-9]{0,8}|[0-9]{1,6}(?:\.[0-9]{1,6})?[smhd])$"
_WINDOW = re.compile(WINDOW_PATTERN)
_LONGEST = timedelta(days=3660)  # older than any retention: a longer period means "all of it"
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(window: str | None, default_rows: int) -> tuple[int, timedelta | None]:
    """`window`: a number of labelled predictions (`500`) or a period of predictions (`24h`, `7d`)."""
    if window is None:
        return default_rows, None
    if _WINDOW.fullmatch(window) is None:
        raise InvalidInputError(
            "window must be a number of labelled predictions (e.g. 500) or a period (e.g. 30m, 24h, 7d)",
            details=[{"loc": ["query", "window"], "field": "window", "msg": "expected e.g. 500 or 24h"}],
        )
    if window[-1].isdigit():
        return int(window), None
    return 1_000_000, min(_LONGEST, timedelta(seconds=float(window[:-1]) * _SECONDS[window[-1]]))


def store_performance(
    store: PredictionStore, *, positive: object, model_version: str | None, rows: int, period: timedelta | None
) -> dict[str, Any]:
    """Accuracy, precision, recall and ROC AUC over the newest labelled predictions in the store."""
    since = datetime.now(UTC) - period if period is not None else None
    pairs = store.labelled(model_version=model_version, limit=rows, since=since)
    window = PerformanceWindow(max(len(pairs), 1))
    window.add(
        LabelledPrediction(outputs.get("prediction"), actual, None, outputs.get("probabilities"))
        for actual, outputs in pairs
    )
    body = window.metrics(positive)
    body["model_version"] = model_version
    body["window"] = {"rows": rows, "period_seconds": period.total_seconds()} if period else {"rows": rows}
    body["source"] = "store"
    return body
