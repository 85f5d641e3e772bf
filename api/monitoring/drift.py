"""Population stability (PSI) of recent traffic against the training profile."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from api.bundle.profile import (
    CategoricalFeature,
    Feature,
    Kind,
    NumericFeature,
    Profile,
    category_key,
)
from api.model.columns import ColumnBatch, batch_length

# Floor for a bin's share on both sides before the logarithm: an empty bin would otherwise
# make PSI infinite. With the floor each term (a - e) * ln(a / e) stays >= 0, so PSI >= 0.
EPSILON = 1e-4


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature over the current window; None when the window is empty."""

    kind: Kind
    psi: float | None
    missing_share: float | None
    unusual_share: float | None  # categorical: unknown categories; numeric: outside [min, max]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: unknown_share for categoricals, out_of_range_share for numerics."""
        unusual = "out_of_range_share" if self.kind == "numeric" else "unknown_share"
        return {"kind": self.kind, "psi": self.psi, "missing_share": self.missing_share, unusual: self.unusual_share}


@dataclass(frozen=True)
class DriftReport:
    """PSI per feature and of the prediction score over the current window."""

    window_size: int
    features: Mapping[str, FeatureDrift]
    prediction_psi: float | None
    prediction_window_size: int
    excluded: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the report."""
        return {
            "window_size": self.window_size,
            "features": {name: drift.to_dict() for name, drift in self.features.items()},
            "prediction": {"psi": self.prediction_psi, "window_size": self.prediction_window_size},
            "excluded": list(self.excluded),
        }


class _CodeSpace:
    """Features laid side by side in one integer code space, so one bincount counts them all."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = tuple(features)
        # All-string categories need no type-aware keys: only a str can equal a str.
        self.string_lookups = [
            {category: code for code, category in enumerate(feature.categories) if isinstance(category, str)}
            if isinstance(feature, CategoricalFeature) and all(type(c) is str for c in feature.categories)
            else None
            for feature in self.features
        ]
        # A numeric-category column is float64 only because it holds a missing value (NaN): its
        # other values are the fitted ints (or bools) and must be looked up as such.
        self.float_casts = [_float_cast(feature) for feature in self.features]
        offsets, slot_of_code, expected, starts, missing, unusual = [], [], [], [], [], []
        code_base = slot_base = 0
        for position, feature in enumerate(self.features):
            slots = feature.expected.size
            if isinstance(feature, NumericFeature):
                bins = slots - 1
                # slot of each code: the bins; below-min and above-max in the end bins; missing
                local = [*range(bins), 0, bins - 1, bins]
                flagged = [bins, bins + 1]
            else:  # slot of each code: categories, unknown, missing (each its own)
                local = list(range(slots))
                flagged = [slots - 2]
            offsets.append(code_base)
            slot_of_code += [slot_base + s for s in local]
            missing.append(code_base + len(local) - 1)
            unusual += [(code_base + code, position) for code in flagged]
            expected.append(feature.expected)
            starts.append(slot_base)
            code_base += len(local)
            slot_base += slots
        self.size = code_base
        self.offsets = np.array(offsets, dtype=np.int32).reshape(-1, 1)
        self.slot_of_code = np.array(slot_of_code, dtype=np.intp)
        self.slots = slot_base
        self.starts = np.array(starts, dtype=np.intp)
        floored = np.maximum(np.concatenate(expected) if expected else np.empty(0), EPSILON)
        self.expected, self.log_expected = floored, np.log(floored)
        self.missing_codes = np.array(missing, dtype=np.intp)
        self.unusual_codes = np.array([code for code, _ in unusual], dtype=np.intp)
        self.unusual_owner = np.array([owner for _, owner in unusual], dtype=np.intp)

    def encode(self, arrays: Sequence[np.ndarray], rows: int) -> np.ndarray:
        """Codes of shape (features, rows), already offset into the shared space."""
        codes = np.empty((len(self.features), rows), dtype=np.int32)
        for position, (feature, values) in enumerate(zip(self.features, arrays, strict=True)):
            if isinstance(feature, NumericFeature):
                codes[position] = _numeric_codes(feature, values)
            else:
                codes[position] = _categorical_codes(feature, values, self.string_lookups[position])
        return codes + self.offsets

    def as_fitted(self, position: int, values: np.ndarray) -> np.ndarray:
        """A batch's column with the Python types the category lookup expects (see float_casts)."""
        cast = self.float_casts[position]
        return _cast_floats(values, cast) if cast is not None and values.dtype.kind == "f" else values

    def summarise(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """PSI, missing share and unusual share per feature of a (features, rows) code block."""
        rows = codes.shape[1]
        counts = np.bincount(codes.ravel(), minlength=self.size)
        slot_counts = np.bincount(self.slot_of_code, weights=counts, minlength=self.slots)
        actual = np.maximum(slot_counts / rows, EPSILON)
        terms = (actual - self.expected) * (np.log(actual) - self.log_expected)
        psi = np.add.reduceat(terms, self.starts) if self.starts.size else np.empty(0)
        unusual = np.bincount(self.unusual_owner, weights=counts[self.unusual_codes], minlength=len(self.features))
        return psi, counts[self.missing_codes] / rows, unusual / rows


class _Ring:
    """Fixed-size ring of code columns; the caller holds the lock."""

    def __init__(self, width: int, capacity: int) -> None:
        self.codes = np.zeros((width, capacity), dtype=np.int32)
        self.position = 0
        self.filled = 0

    def write(self, block: np.ndarray) -> None:
        capacity = self.codes.shape[1]
        block = block[:, -capacity:]
        rows = block.shape[1]
        first = min(rows, capacity - self.position)
        self.codes[:, self.position : self.position + first] = block[:, :first]
        self.codes[:, : rows - first] = block[:, first:]
        self.position = (self.position + rows) % capacity
        self.filled = min(self.filled + rows, capacity)

    def snapshot(self) -> np.ndarray:
        # Row order does not matter to counts, so the filled prefix is the whole window.
        return self.codes[:, : self.filled].copy()


class DriftMonitor:
    """Keeps the last `window` rows as bin codes; compute() turns them into a DriftReport.

    observe() only queues a batch; queued rows are encoded together once ENCODE_EVERY_ROWS
    accumulate (or at compute()), so one-row requests do not each pay numpy's per-call cost.
    """

    ENCODE_EVERY_ROWS = 256

    def __init__(self, profile: Profile, window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._names = tuple(profile.features)
        self._excluded = tuple(profile.excluded)
        self._inputs = _CodeSpace([profile.features[name] for name in self._names])
        self._scores = None if profile.prediction is None else _CodeSpace([profile.prediction])
        self._input_ring = _Ring(len(self._names), window)
        self._score_ring = _Ring(1, window)
        self._lock = threading.Lock()
        self._encoding = threading.Lock()  # held across a whole flush, so batches reach the ring in order
        self._queued: list[tuple[int, list[np.ndarray], np.ndarray | None]] = []
        self._queued_rows = 0

    def observe(self, columns: ColumnBatch, scores: np.ndarray | None) -> None:
        """Append a batch (and its scores, if the profile has them) to the window."""
        rows = batch_length(columns)
        window = self._input_ring.codes.shape[1]
        absent = [name for name in self._names if name not in columns]
        if absent:
            raise ValueError(f"columns missing from the batch: {absent}")
        arrays = [np.asarray(columns[name]) for name in self._names]
        if any(values.shape != (rows,) for values in arrays):
            raise ValueError(f"every column must be one-dimensional with {rows} rows")
        scored = None
        if scores is not None and self._scores is not None:
            scored = np.asarray(scores, dtype=np.float64)
            if scored.shape != (rows,):
                raise ValueError(f"scores must have shape ({rows},), not {scored.shape}")
            scored = scored[-window:]
        # Only the rows that can still be in the window are worth keeping.
        kept = min(rows, window)
        fitted = [self._inputs.as_fitted(i, values[-window:]) for i, values in enumerate(arrays)]
        with self._lock:
            self._queued.append((kept, fitted, scored))
            self._queued_rows += kept
            due = self._queued_rows >= self.ENCODE_EVERY_ROWS
        if due:
            self._encode_queued()

    def _encode_queued(self) -> None:
        with self._encoding:
            with self._lock:
                queued, self._queued, self._queued_rows = self._queued, [], 0
            if not queued:
                return
            window = self._input_ring.codes.shape[1]
            rows = min(sum(kept for kept, _, _ in queued), window)
            columns = [_joined([arrays[i] for _, arrays, _ in queued])[-window:] for i in range(len(self._names))]
            inputs = self._inputs.encode(columns, rows)
            scored = None
            scores = [batch for _, _, batch in queued if batch is not None]
            if self._scores is not None and scores:
                joined = _joined(scores)[-window:]
                scored = self._scores.encode([joined], joined.shape[0])
            with self._lock:
                self._input_ring.write(inputs)
                if scored is not None:
                    self._score_ring.write(scored)

    def compute(self) -> DriftReport:
        """PSI of every profiled feature and of the score over the current window."""
        self._encode_queued()
        with self._lock:
            inputs = self._input_ring.snapshot()
            scores = self._score_ring.snapshot()
        size = inputs.shape[1]
        kinds = [feature.kind for feature in self._inputs.features]
        if size:
            psi, missing, unusual = (a.tolist() for a in self._inputs.summarise(inputs))
            rows = zip(self._names, kinds, psi, missing, unusual, strict=True)
            features = {name: FeatureDrift(*stats) for name, *stats in rows}
        else:
            features = {
                name: FeatureDrift(kind, None, None, None) for name, kind in zip(self._names, kinds, strict=True)
            }
        prediction_psi = None
        if self._scores is not None and scores.shape[1]:
            prediction_psi = float(self._scores.summarise(scores)[0][0])
        return DriftReport(size, features, prediction_psi, scores.shape[1], self._excluded)


def _float_cast(feature: Feature) -> type[int] | type[bool] | None:
    if not isinstance(feature, CategoricalFeature):
        return None
    kinds = {type(category) for category in feature.categories}
    return int if kinds == {int} else bool if kinds == {bool} else None


def _cast_floats(values: np.ndarray, cast: type[int] | type[bool]) -> np.ndarray:
    """Integral floats as `cast` (1.0 → 1 or True); NaN and fractions stay floats (missing, unknown)."""
    out = np.empty(values.shape, dtype=object)
    fitted = (lambda v: v.is_integer()) if cast is int else (lambda v: v in (0.0, 1.0))
    out[:] = [cast(v) if fitted(v) else v for v in values.tolist()]
    return out


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """One column from several batches; mixed dtypes (int64 beside float64 with NaN) are joined as
    Python objects, so each value keeps the type the type-aware category lookup needs."""
    if len(pieces) == 1:
        return pieces[0]
    if len({piece.dtype for piece in pieces}) > 1:
        pieces = [piece.astype(object) for piece in pieces]
    return np.concatenate(pieces)


def _numeric_codes(feature: NumericFeature, values: np.ndarray) -> np.ndarray:
    """Bin index by np.searchsorted; bins+0 below min, bins+1 above max, bins+2 missing."""
    values = np.asarray(values, dtype=np.float64)
    bins = feature.edges.size + 1
    codes = np.searchsorted(feature.edges, values, side="right")
    codes[values < feature.minimum] = bins
    codes[values > feature.maximum] = bins + 1
    codes[np.isnan(values)] = bins + 2
    return codes


def _categorical_codes(
    feature: CategoricalFeature, values: np.ndarray, strings: Mapping[str, int] | None
) -> np.ndarray:
    """Category index by type-aware lookup; len(categories) unknown, +1 missing."""
    listed = values.tolist()
    if strings is not None:
        codes = list(map(strings.get, listed, repeat(-1)))
    else:
        get = feature.index.get
        # Keys carry the type so that True, 1 and 1.0 are not one category (they hash alike).
        codes = [get((value.__class__, value), -1) for value in listed]
    if -1 in codes:  # unknown, missing or a numpy scalar: the slow path only for those rows
        codes = [code if code >= 0 else _slow_code(feature, value) for code, value in zip(codes, listed, strict=True)]
    return np.array(codes, dtype=np.intp)


def _slow_code(feature: CategoricalFeature, value: object) -> int:
    unknown = len(feature.categories)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return unknown + 1
    key = category_key(value)
    return unknown if key is None else feature.index.get(key, unknown)
