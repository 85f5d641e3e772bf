"""Live accuracy: label normalisation, the prediction log, and metrics equal to scikit-learn's."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from api.monitoring.performance import (
    LabelledPrediction,
    PerformanceWindow,
    PredictionLog,
    normalize_label,
    roc_auc,
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("raw", "classes", "expected"),
    [
        pytest.param(1, [0, 1], 1, id="int-exact"),
        pytest.param("1", [0, 1], 1, id="string-for-int"),
        pytest.param(1.0, [0, 1], 1, id="float-for-int"),
        pytest.param(True, [0, 1], 1, id="true-for-1"),
        pytest.param(False, [0, 1], 0, id="false-for-0"),
        pytest.param("Yes", ["No", "Yes"], "Yes", id="string-exact"),
        pytest.param(1, ["0", "1"], "1", id="int-for-string"),
        pytest.param(True, [False, True], True, id="bool-exact"),
        pytest.param(1, [False, True], True, id="1-for-true"),
        pytest.param("false", [False, True], False, id="json-false-text"),
        pytest.param("True", [False, True], True, id="python-true-text"),
        pytest.param(1, [np.int64(0), np.int64(1)], np.int64(1), id="numpy-int-classes"),
        pytest.param("b", np.array(["a", "b"]), np.str_("b"), id="numpy-str-classes"),
        pytest.param(1, [1, "1"], 1, id="exact-beats-text"),
        pytest.param("1", [1, "1"], "1", id="exact-string-beats-int"),
        pytest.param(2.5, [1.5, 2.5], 2.5, id="float-classes"),
    ],
)
def test_normalize_label(raw: object, classes: list[object], expected: object) -> None:
    label = normalize_label(raw, classes)
    assert label == expected and type(label) is type(expected)


@pytest.mark.parametrize(
    ("raw", "classes", "message"),
    [
        pytest.param("yes", ["No", "Yes"], "not one of the model's classes", id="case-differs"),
        pytest.param(2, [0, 1], "not one of", id="no-such-int"),
        pytest.param(True, ["No", "Yes"], "not one of", id="bool-for-strings"),
        pytest.param("1.0", [0, 1], "not one of", id="float-text-for-int"),
        pytest.param(None, [0, 1], "not one of", id="null"),
        pytest.param(float("nan"), [0.0, 1.0], "not one of", id="nan"),
        pytest.param([1], [0, 1], "not one of", id="list"),
        pytest.param(True, [1, 1.0], "ambiguous", id="ambiguous-truth"),
        pytest.param(1.0, [1, np.int64(1)], "ambiguous", id="ambiguous-number"),
    ],
)
def test_normalize_label_rejects(raw: object, classes: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_label(raw, classes)


def test_log_matches_labels_and_reports_the_rest() -> None:
    clock = FakeClock()
    log = PredictionLog(capacity=10, ttl_seconds=60, clock=clock)
    log.record("old", 1, 0.9, None)
    clock.now += 30
    log.record("a", 1, 0.8, {0: 0.2, 1: 0.8})
    log.record("b", 0, 0.3, None)
    clock.now += 40  # "old" is 70 s old, "a" and "b" 40 s
    result = log.label([("a", 0), ("b", 0), ("a", 1), ("old", 1), ("nope", 0)])
    assert result.to_dict() == {"accepted": 2, "unknown": ["nope"], "expired": ["old"],
                                "duplicate": ["a"]}
    assert result.matched == (LabelledPrediction(1, 0, 0.8, {0: 0.2, 1: 0.8}),
                              LabelledPrediction(0, 0, 0.3, None))
    again = log.label([("b", 1)])
    assert again.duplicate == ("b",) and again.accepted == 0  # the first label stands


@pytest.mark.parametrize(
    ("age", "outcome"),
    [
        pytest.param(59.9, "accepted", id="inside-ttl"),
        pytest.param(60.0, "accepted", id="at-ttl"),
        pytest.param(60.1, "expired", id="past-ttl"),
    ],
)
def test_ttl_boundary(age: float, outcome: str) -> None:
    clock = FakeClock()
    log = PredictionLog(capacity=10, ttl_seconds=60, clock=clock)
    log.record("p", 1, None, None)
    clock.now += age
    result = log.label([("p", 1)])
    assert (result.accepted == 1) is (outcome == "accepted")
    assert (result.expired == ("p",)) is (outcome == "expired")


def test_capacity_evicts_the_oldest() -> None:
    log = PredictionLog(capacity=3, ttl_seconds=60, clock=FakeClock())
    for i in range(5):
        log.record(f"p{i}", 1, None, None)
    log.record("p2", 0, None, None)  # recorded again: now the newest
    log.record("p5", 1, None, None)
    assert len(log) == 3
    result = log.label([(f"p{i}", 1) for i in range(6)])
    assert result.unknown == ("p0", "p1", "p3")
    assert [pair.predicted for pair in result.matched] == [0, 1, 1]


@pytest.mark.parametrize(
    ("capacity", "ttl"),
    [pytest.param(0, 1.0, id="no-capacity"), pytest.param(1, 0.0, id="no-ttl")],
)
def test_log_rejects_bad_bounds(capacity: int, ttl: float) -> None:
    with pytest.raises(ValueError, match="capacity"):
        PredictionLog(capacity, ttl)


def pairs(predicted: list[Any], actual: list[Any], scores: list[float | None]) -> list[Any]:
    """Labelled predictions from parallel lists."""
    return [LabelledPrediction(p, a, s) for p, a, s in zip(predicted, actual, scores, strict=True)]


@pytest.mark.parametrize(
    ("predicted", "actual", "scores", "expected"),
    [
        pytest.param([], [], [], {"labelled": 0, "accuracy": None, "precision": None,
                                  "recall": None, "roc_auc": None}, id="empty"),
        pytest.param([1, 0, 1, 0], [1, 0, 0, 1], [0.9, 0.1, 0.6, 0.4],
                     {"labelled": 4, "accuracy": 0.5, "precision": 0.5, "recall": 0.5,
                      "roc_auc": 0.75}, id="mixed"),
        pytest.param([0, 0], [1, 0], [0.4, 0.1], {"labelled": 2, "accuracy": 0.5,
                     "precision": None, "recall": 0.0, "roc_auc": 1.0},
                     id="no-predicted-positives-precision-null"),
        pytest.param([1, 1], [1, 1], [0.7, 0.8], {"labelled": 2, "accuracy": 1.0,
                     "precision": 1.0, "recall": 1.0, "roc_auc": None},
                     id="one-class-auc-null"),
        pytest.param([1, 0, 0], [1, 0, 1], [None, 0.2, 0.5], {"labelled": 3, "accuracy": 2 / 3,
                     "precision": 1.0, "recall": 0.5, "roc_auc": 1.0},
                     id="unscored-rows-left-out-of-auc"),
        pytest.param([1, 0], [0, 1], [0.5, 0.5], {"labelled": 2, "accuracy": 0.0,
                     "precision": 0.0, "recall": 0.0, "roc_auc": 0.5}, id="tied-scores"),
    ],
)
def test_metrics_by_hand(predicted: list[Any], actual: list[Any], scores: list[float | None],
                         expected: dict[str, Any]) -> None:
    window = PerformanceWindow(10)
    window.add(pairs(predicted, actual, scores))
    assert window.metrics(1) == pytest.approx(expected)


def test_auc_falls_back_to_the_positive_class_probability() -> None:
    window = PerformanceWindow(10)
    window.add([LabelledPrediction(1, 1, None, {0: 0.2, 1: 0.8}),
                LabelledPrediction(0, 0, None, {0: 0.7, 1: 0.3}),
                LabelledPrediction(0, 1, None, {"0": 0.9, "1": 0.1}),  # keys as JSON has them
                LabelledPrediction(0, 0, None, {"0": 1.0})])  # no score for class 1: left out
    assert window.metrics(1)["roc_auc"] == 0.5


def test_window_keeps_the_most_recent_pairs() -> None:
    window = PerformanceWindow(3)
    window.add(pairs([0, 0, 0], [1, 1, 1], [0.1, 0.2, 0.3]))
    window.add(pairs([1, 1], [1, 1], [0.9, 0.8]))
    assert len(window) == 3
    assert window.metrics(1)["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="size"):
        PerformanceWindow(0)


labels = st.lists(st.tuples(st.sampled_from(["No", "Yes"]), st.sampled_from(["No", "Yes"]),
                            st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(0, 1)),
                  min_size=1, max_size=200)


@given(labels)
@settings(max_examples=200, deadline=None)
def test_metrics_equal_sklearn(rows: list[tuple[str, str, float]]) -> None:
    predicted, actual, scores = (list(column) for column in zip(*rows, strict=True))
    window = PerformanceWindow(1000)
    window.add(pairs(predicted, actual, scores))
    metrics = window.metrics("Yes")
    assert metrics["labelled"] == len(rows)
    assert metrics["accuracy"] == accuracy_score(actual, predicted)
    for name, score in (("precision", precision_score), ("recall", recall_score)):
        sklearn_value = score(actual, predicted, pos_label="Yes", zero_division=0)
        assert metrics[name] == (sklearn_value if metrics[name] is not None else None)
        if metrics[name] is None:
            assert sklearn_value == 0.0
    if len(set(actual)) == 2:
        expected = roc_auc_score([a == "Yes" for a in actual], scores)
        assert metrics["roc_auc"] == pytest.approx(expected, rel=0, abs=1e-12)
    else:
        assert metrics["roc_auc"] is None


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=300))
@settings(max_examples=200, deadline=None)
def test_roc_auc_equals_sklearn_with_ties(rows: list[tuple[bool, int]]) -> None:
    positives = [p for p, _ in rows]
    scores = [s / 5 for _, s in rows]
    ours = roc_auc(scores, positives)
    if all(positives) or not any(positives):
        assert ours is None
    else:
        assert ours == pytest.approx(roc_auc_score(positives, scores), rel=0, abs=1e-12)


def test_log_and_window_are_thread_safe() -> None:
    log = PredictionLog(capacity=100_000, ttl_seconds=60)
    window = PerformanceWindow(100_000)

    def serve(worker: int) -> None:
        for i in range(500):
            log.record(f"{worker}-{i}", i % 2, 0.5, None)
        for start in range(0, 500, 50):
            result = log.label([(f"{worker}-{i}", 1) for i in range(start, start + 50)])
            window.add(result.matched)
            window.metrics(1)

    threads = [threading.Thread(target=serve, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log) == len(window) == 4000
    assert window.metrics(1)["accuracy"] == 0.5
