"""Build a training-data profile from training columns (and scores): the document profile.py reads and writes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from api.bundle.profile import FORMAT_VERSION, CategoryKey, Kind, category_key


def build_profile(
    columns: Mapping[str, np.ndarray],
    kinds: Mapping[str, Kind],
    scores: np.ndarray | None,
    *,
    bins: int = 10,
    sample_rows: int = 200,
    seed: int = 0,
    max_unique_share: float | None = 0.5,
) -> dict[str, Any]:
    """Profile training columns (and scores) as a JSON-ready dict; ID-like categoricals excluded."""
    rows = len(next(iter(columns.values()), ()))
    if rows < 1 or bins < 2 or sample_rows < 0 or seed < 0:
        raise ValueError("need at least one row, bins >= 2, sample_rows >= 0 and seed >= 0")
    absent = [name for name in kinds if name not in columns]
    if absent:
        raise ValueError(f"columns missing from the training batch: {absent}")
    if any(np.shape(columns[name]) != (rows,) for name in kinds):
        raise ValueError(f"every profiled column must be one-dimensional with {rows} rows")
    features: dict[str, Any] = {}
    excluded: dict[str, Any] = {}
    for name, kind in kinds.items():
        if kind == "numeric":
            features[name] = {"kind": kind, **_numeric_summary(columns[name], bins)}
            continue
        if kind != "categorical":
            raise ValueError(f"kind of {name!r} must be 'numeric' or 'categorical', not {kind!r}")
        summary = _categorical_summary(name, columns[name])
        unique = len(summary["categories"])
        # An ID-like column (every customer a new category) has no stable distribution to drift.
        if max_unique_share is not None and unique > max_unique_share * rows:
            excluded[name] = {"kind": kind, "reason": "id_like", "unique": unique}
        else:
            features[name] = {"kind": kind, **summary}
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (rows,):
            raise ValueError(f"scores must be one value per row, shape ({rows},), not {scores.shape}")
    picked = _sample_indices(rows, sample_rows, seed)
    return {
        "format_version": FORMAT_VERSION,
        "rows": rows,
        "bins": bins,
        "features": features,
        "excluded": excluded,
        "prediction": None if scores is None else _numeric_summary(scores, bins),
        "sample": {
            "rows": [{name: _json_value(columns[name][i]) for name in kinds} for i in picked],
            "scores": None if scores is None else [_json_value(scores[i]) for i in picked],
        },
    }


def _numeric_summary(values: np.ndarray, bins: int) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    present = values[~missing]
    finite = present[np.isfinite(present)]
    if finite.size:
        # Edge k is the (k*n // bins)-th smallest value, so about k/bins of the rows lie below
        # it and, bins being [edge, next edge), every bin holds at least its own edge value.
        # Integer positions keep this exact and the same on every numpy. np.unique merges the
        # repeated edges of discrete columns; an edge at the minimum would leave the first bin
        # empty, so it goes too.
        ordered = np.sort(finite)
        edges = np.unique(ordered[np.arange(1, bins) * ordered.size // bins])
        edges = edges[edges > ordered[0]]
        low, high = float(ordered[0]), float(ordered[-1])
    else:
        edges, low, high = np.empty(0), None, None
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    return {
        "edges": edges.tolist(),
        "shares": (counts / values.size).tolist(),
        "missing_share": float(missing.sum() / values.size),
        "min": low,
        "max": high,
    }


def _categorical_summary(name: str, values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=object)
    missing = pd.isna(values)
    counts: dict[CategoryKey, int] = {}
    for value in values[~missing]:
        key = category_key(value)
        if key is None:
            raise ValueError(f"column {name!r}: unsupported category value {value!r}")
        counts[key] = counts.get(key, 0) + 1
    # Most frequent first; ties broken by type and value so the file is deterministic.
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0].__name__, repr(kv[0][1])))
    return {
        "categories": [
            {"type": cls.__name__, "value": value, "share": count / values.size}
            for (cls, value), count in ordered
        ],
        "missing_share": float(missing.sum() / values.size),
    }


def _sample_indices(rows: int, size: int, seed: int) -> np.ndarray:
    """Deterministic sample: rows ranked by a splitmix64 hash of (seed, index)."""
    # numpy's Generator streams are not promised stable across versions; this hash is.
    state = np.arange(rows, dtype=np.uint64) + np.array([seed], dtype=np.uint64) * np.uint64(
        0x9E3779B97F4A7C15
    )
    state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    state ^= state >> np.uint64(31)
    return np.sort(np.argsort(state, kind="stable")[:size])


def _json_value(value: object) -> Any:
    """A JSON-safe scalar: numpy unwrapped, NaN/None/non-finite floats as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"value {value!r} is not a JSON scalar")
