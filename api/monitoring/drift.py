"""Population stability (PSI) of recent traffic against the training profile: the window and its reports.

How values become PSI slots (bins, categories, unknown, missing) is in codes.py.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.bundle.profile import Kind, Profile
from api.model.columns import ColumnBatch, batch_length
from api.monitoring.codes import EPSILON, CodeSpace

__all__ = ["EPSILON", "DriftCounts", "DriftMonitor", "DriftReport", "FeatureDrift"]


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
class DriftCounts:
    """Code counts of some rows (inputs and scores): summable across replicas and time buckets."""

    inputs: np.ndarray
    rows: int
    scores: np.ndarray
    score_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs.tolist(), "rows": self.rows, "scores": self.scores.tolist(),
                "score_rows": self.score_rows}  # fmt: skip

    @staticmethod
    def total(parts: list[dict[str, Any]], inputs_size: int, scores_size: int) -> DriftCounts:
        """The sum of stored counts laid out for this profile (others, from another profile, are skipped)."""
        inputs, scores = np.zeros(inputs_size, dtype=np.int64), np.zeros(scores_size, dtype=np.int64)
        rows = score_rows = 0
        for part in parts:
            if len(part.get("inputs", ())) == inputs_size:
                inputs += np.asarray(part["inputs"], dtype=np.int64)
                rows += int(part["rows"])
            if len(part.get("scores", ())) == scores_size and scores_size:
                scores += np.asarray(part["scores"], dtype=np.int64)
                score_rows += int(part["score_rows"])
        return DriftCounts(inputs, rows, scores, score_rows)


@dataclass(frozen=True)
class DriftReport:
    """PSI per feature and of the prediction score over the current window."""

    window_size: int
    features: Mapping[str, FeatureDrift]
    prediction_psi: float | None
    prediction_window_size: int
    excluded: tuple[str, ...]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the report."""
        body = {
            "window_size": self.window_size,
            "features": {name: drift.to_dict() for name, drift in self.features.items()},
            "prediction": {"psi": self.prediction_psi, "window_size": self.prediction_window_size},
            "excluded": list(self.excluded),
        }
        if self.note is not None:
            body["status"] = "insufficient data"
            body["note"] = self.note
        return body

    def withheld_below(self, min_rows: int) -> DriftReport:
        """The report without PSI when the window is too small to mean anything (10 rows gave PSI 3.2)."""
        if self.window_size >= min_rows:
            return self
        features = {
            name: FeatureDrift(f.kind, None, f.missing_share, f.unusual_share) for name, f in self.features.items()
        }
        note = (
            f"insufficient data: PSI needs at least {min_rows} rows in the window (DRIFT_MIN_ROWS), "
            f"it has {self.window_size}"
        )
        return DriftReport(self.window_size, features, None, self.prediction_window_size, self.excluded, note)


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
        self._inputs = CodeSpace([profile.features[name] for name in self._names])
        self._scores = None if profile.prediction is None else CodeSpace([profile.prediction])
        self._input_ring = _Ring(len(self._names), window)
        self._score_ring = _Ring(1, window)
        self._lock = threading.Lock()
        self._encoding = threading.Lock()  # held across a whole flush, so batches reach the ring in order
        self._queued: list[tuple[int, list[np.ndarray], np.ndarray | None]] = []
        self._queued_rows = 0
        # Code counts since the last take_counts(): what this replica adds to the fleet's drift.
        self._new_counts = np.zeros(self._inputs.size, dtype=np.int64)
        self._new_rows = 0
        self._new_score_counts = np.zeros(self._scores.size if self._scores is not None else 0, dtype=np.int64)
        self._new_score_rows = 0

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
                self._new_counts += self._inputs.count(inputs)
                self._new_rows += inputs.shape[1]
                if scored is not None and self._scores is not None:
                    self._score_ring.write(scored)
                    self._new_score_counts += self._scores.count(scored)
                    self._new_score_rows += scored.shape[1]

    @property
    def sizes(self) -> tuple[int, int]:
        """The length of the input and score count vectors for this profile."""
        return self._inputs.size, self._scores.size if self._scores is not None else 0

    def take_counts(self) -> DriftCounts:
        """The code counts observed since the last call (and reset them): a replica's share of fleet drift."""
        self._encode_queued()
        with self._lock:
            taken = DriftCounts(self._new_counts, self._new_rows, self._new_score_counts, self._new_score_rows)
            self._new_counts = np.zeros_like(self._new_counts)
            self._new_score_counts = np.zeros_like(self._new_score_counts)
            self._new_rows = self._new_score_rows = 0
        return taken

    def report_from(self, counts: DriftCounts) -> DriftReport:
        """A report over counts added up elsewhere (every replica's, from the store)."""
        kinds = [feature.kind for feature in self._inputs.features]
        if counts.rows and counts.inputs.shape == (self._inputs.size,):
            psi, missing, unusual = (a.tolist() for a in self._inputs.summarise_counts(counts.inputs, counts.rows))
            rows = zip(self._names, kinds, psi, missing, unusual, strict=True)
            features = {name: FeatureDrift(*stats) for name, *stats in rows}
        else:
            features = {
                name: FeatureDrift(kind, None, None, None) for name, kind in zip(self._names, kinds, strict=True)
            }
        prediction_psi = None
        scored = self._scores is not None and counts.score_rows and counts.scores.shape == (self._scores.size,)
        if scored and self._scores is not None:
            prediction_psi = float(self._scores.summarise_counts(counts.scores, counts.score_rows)[0][0])
        return DriftReport(counts.rows, features, prediction_psi, counts.score_rows, self._excluded)

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


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """One column from several batches; mixed dtypes (int64 beside float64 with NaN) are joined as
    Python objects, so each value keeps the type the type-aware category lookup needs."""
    if len(pieces) == 1:
        return pieces[0]
    if len({piece.dtype for piece in pieces}) > 1:
        pieces = [piece.astype(object) for piece in pieces]
    return np.concatenate(pieces)
