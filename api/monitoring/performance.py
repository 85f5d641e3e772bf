"""Live accuracy: recent predictions matched to the true labels that arrive later."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from api.errors import clip


@dataclass(frozen=True)
class LabelledPrediction:
    """A served prediction with the true label it turned out to have."""

    predicted: object
    actual: object
    score: float | None
    probabilities: Mapping[Any, float] | None = None


@dataclass(frozen=True)
class FeedbackResult:
    """Outcome of one batch of labels; unknown, expired and duplicate ids are not errors."""

    accepted: int
    unknown: tuple[str, ...]
    expired: tuple[str, ...]
    duplicate: tuple[str, ...]
    matched: tuple[LabelledPrediction, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the matched pairs stay server-side)."""
        return {
            "accepted": self.accepted,
            "unknown": list(self.unknown),
            "expired": list(self.expired),
            "duplicate": list(self.duplicate),
        }


class _Entry(NamedTuple):
    """A served prediction (a tuple: one is made per answered row, so construction must be cheap)."""

    predicted: object
    score: float | None
    probabilities: Mapping[Any, float] | None
    recorded_at: float
    labelled: bool = False


class PredictionLog:
    """Recent predictions by id, bounded by capacity (oldest evicted) and labelled within ttl."""

    def __init__(self, capacity: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or not ttl_seconds > 0:
            raise ValueError("capacity must be >= 1 and ttl_seconds > 0")
        self._capacity, self._ttl, self._clock = capacity, ttl_seconds, clock
        # Insertion order is time order, so the oldest entry is always first in line. Entries are
        # stored as plain tuples in _Entry's field order: zip builds those in C, one per served row.
        self._entries: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def record(
        self,
        prediction_id: str,
        predicted_label: object,
        score: float | None,
        probabilities: Mapping[Any, float] | None,
    ) -> None:
        """Remember a served prediction so a label can be matched to it later."""
        entry = _Entry(predicted_label, score, probabilities, self._clock())
        with self._lock:
            self._entries.pop(prediction_id, None)
            self._entries[prediction_id] = entry
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def record_many(
        self, prediction_ids: Sequence[str], predicted: Sequence[object], scores: Sequence[float] | None
    ) -> None:
        """Remember a whole answered batch under one lock (the per-request hot path)."""
        now = self._clock()
        scored = repeat(None) if scores is None else scores
        rows = zip(predicted, scored, repeat(None), repeat(now), repeat(False), strict=False)
        entries = zip(prediction_ids, rows, strict=True)
        with self._lock:
            self._entries.update(entries)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def label(self, items: Sequence[tuple[str, object]]) -> FeedbackResult:
        """Match (id, true label) pairs; the first label of an id wins, later ones are duplicates."""
        # Labels arrive already mapped onto the model's classes by normalize_label (rejecting
        # a bad one is the route's 422). Expired entries are kept (the capacity bound still
        # evicts them) so a late label is reported as expired rather than unknown; a labelled
        # entry stays to catch duplicates.
        now = self._clock()
        unknown: list[str] = []
        expired: list[str] = []
        duplicate: list[str] = []
        matched: list[LabelledPrediction] = []
        with self._lock:
            for prediction_id, actual in items:
                stored = self._entries.get(prediction_id)
                entry = None if stored is None else _Entry._make(stored)
                if entry is None:
                    unknown.append(prediction_id)
                elif now - entry.recorded_at > self._ttl:
                    expired.append(prediction_id)
                elif entry.labelled:
                    duplicate.append(prediction_id)
                else:
                    self._entries[prediction_id] = entry._replace(labelled=True)
                    matched.append(LabelledPrediction(entry.predicted, actual, entry.score, entry.probabilities))
        return FeedbackResult(len(matched), tuple(unknown), tuple(expired), tuple(duplicate), tuple(matched))


class PerformanceWindow:
    """The most recent `size` labelled predictions and their classification metrics."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._pairs: deque[LabelledPrediction] = deque(maxlen=size)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pairs)

    def add(self, pairs: Iterable[LabelledPrediction]) -> None:
        """Append labelled predictions, dropping the oldest beyond the window."""
        pairs = list(pairs)
        with self._lock:
            self._pairs.extend(pairs)

    def metrics(self, positive_label: object) -> dict[str, Any]:
        """Accuracy, precision, recall and ROC AUC over the window (None where undefined)."""
        with self._lock:
            pairs = list(self._pairs)
        labelled = len(pairs)
        correct = sum(1 for p in pairs if p.predicted == p.actual)
        true_pos = sum(1 for p in pairs if p.predicted == positive_label == p.actual)
        predicted_pos = sum(1 for p in pairs if p.predicted == positive_label)
        actual_pos = sum(1 for p in pairs if p.actual == positive_label)
        scored = [(s, p.actual == positive_label) for p in pairs if (s := _score_for(p, positive_label)) is not None]
        return {
            "labelled": labelled,
            "accuracy": _ratio(correct, labelled),
            # Undefined ratios (no predicted / no actual positives) are None, not sklearn's 0.0.
            "precision": _ratio(true_pos, predicted_pos),
            "recall": _ratio(true_pos, actual_pos),
            "roc_auc": roc_auc([s for s, _ in scored], [y for _, y in scored]),
        }


def roc_auc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Exact ROC AUC (Mann-Whitney U with ties counted half); None unless both classes occur."""
    score = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positives, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, group = np.unique(score, return_inverse=True)
    group = group.reshape(-1)  # numpy 2.0-2.1 returned the inverse in the input's shape
    pos = np.bincount(group[positive], minlength=group.max() + 1).astype(np.int64)
    neg = np.bincount(group[~positive], minlength=group.max() + 1).astype(np.int64)
    below = np.cumsum(neg) - neg
    # Twice U in exact integers, so the single division below is correctly rounded.
    twice_u = int(np.sum(pos * (2 * below + neg)))
    return twice_u / (2 * n_pos * n_neg)


def normalize_label(raw: object, classes: Sequence[object]) -> object:
    """Map a label as sent in JSON (1, "1", "Yes", true) onto one of the model's classes."""
    for matches in (_same_value, _same_number, _same_truth, _same_text):
        found = [c for c in classes if matches(raw, c)]
        if len(found) > 1:
            raise ValueError(f"label {clip(raw)} is ambiguous among the classes {_show(found)}")
        if found:
            return found[0]
    raise ValueError(f"label {clip(raw)} is not one of the model's classes {_show(classes)}")


def _kind(value: object) -> str | None:
    """The JSON-ish type of a label: bool, int, float or str (numpy scalars included)."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float" if math.isfinite(value) else None
    return "str" if isinstance(value, str) else None


def _same_value(raw: object, cls: object) -> bool:
    kind = _kind(raw)
    return kind is not None and kind == _kind(cls) and bool(raw == cls)


def _same_number(raw: object, cls: object) -> bool:
    # 1.0 for the class 1 (and 1 for 1.0), but never a bool for a number: that is _same_truth.
    numeric = ("int", "float")
    return _kind(raw) in numeric and _kind(cls) in numeric and bool(raw == cls)


def _same_truth(raw: object, cls: object) -> bool:
    # true/false for classes 1/0, 1/0 or "true"/"false" for boolean classes.
    kinds = {_kind(raw), _kind(cls)}
    if kinds in ({"bool", "int"}, {"bool", "float"}):
        return raw in (0, 1) and cls in (0, 1) and bool(raw == cls)
    if kinds == {"bool", "str"} and _kind(cls) == "bool":
        return str(raw).lower() == str(bool(cls)).lower()
    return False


def _same_text(raw: object, cls: object) -> bool:
    return _kind(raw) is not None and _kind(cls) is not None and str(raw) == str(cls)


def _score_for(pair: LabelledPrediction, positive_label: object) -> float | None:
    """The recorded score of the positive class: score, else probabilities[positive_label]."""
    score = pair.score
    if score is None and pair.probabilities is not None:
        score = pair.probabilities.get(positive_label, pair.probabilities.get(str(positive_label)))
    return None if score is None or math.isnan(score) else float(score)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _show(classes: Iterable[object]) -> str:
    return repr([c.item() if isinstance(c, np.generic) else c for c in classes])
