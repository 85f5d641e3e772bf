"""DriftMonitor: PSI against the profile, the ring-buffer window, shares, speed, real traffic."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.bundle.profile import Profile, parse_profile
from api.bundle.profiling import build_profile
from api.monitoring.drift import EPSILON, DriftMonitor

ROOT = Path(__file__).resolve().parents[2]
REAL_CSV = ROOT.parent / "shared" / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
NUMERIC = ("tenure", "MonthlyCharges", "TotalCharges")
NAN = float("nan")
KINDS: dict[str, Any] = {"n": "numeric", "c": "categorical"}
CATEGORIES = st.sampled_from(["a", "b", "c", 1, True, 2.5, NAN])
NUMBERS = st.floats(-100, 100) | st.just(NAN) | st.integers(0, 3).map(float)


def objects(*values: object) -> np.ndarray:
    """A categorical column as the ColumnBatch contract has it."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def batch(numbers: list[float], categories: list[object]) -> dict[str, np.ndarray]:
    """A two-column ColumnBatch."""
    return {"n": np.array(numbers, dtype=np.float64), "c": objects(*categories)}


def profile_of(columns: dict[str, np.ndarray], scores: np.ndarray | None = None,
               kinds: dict[str, Any] | None = None) -> Profile:
    """The parsed profile of a training batch (no ID-like rule: test data is tiny)."""
    return parse_profile(build_profile(columns, kinds or KINDS, scores, max_unique_share=None))


def reference_psi(expected: list[float], actual: list[float]) -> float:
    """PSI written out term by term, with the epsilon floor on both sides."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


rows_strategy = st.lists(st.tuples(NUMBERS, CATEGORIES), min_size=1, max_size=60)


def split(rows: list[tuple[float, object]]) -> dict[str, np.ndarray]:
    """Rows of (number, category) as a ColumnBatch."""
    return batch([n for n, _ in rows], [c for _, c in rows])


@pytest.mark.parametrize(
    ("train", "live", "expected", "actual"),
    [
        pytest.param(["a"] * 5 + ["b"] * 5, ["a"] * 10, [0.5, 0.5, 0, 0], [1, 0, 0, 0],
                     id="category-vanishes"),
        pytest.param(["a"] * 5 + ["b"] * 5, ["a", "b"], [0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0],
                     id="same-mix"),
        pytest.param(["a"] * 4, ["z", "z", NAN, "a"], [1, 0, 0], [0.25, 0.5, 0.25],
                     id="unknown-and-missing-slots"),
        pytest.param([1, 1, 0, 0], ["1", "1", 1, 0], [0.5, 0.5, 0, 0], [0.25, 0.25, 0.5, 0],
                     id="string-1-is-unknown-for-int-1"),
    ],
)
def test_categorical_psi_by_hand(train: list[object], live: list[object],
                                 expected: list[float], actual: list[float]) -> None:
    profile = profile_of({"c": objects(*train)}, kinds={"c": "categorical"})
    monitor = DriftMonitor(profile, window=100)
    monitor.observe({"c": objects(*live)}, None)
    psi = monitor.compute().features["c"].psi
    assert psi == pytest.approx(reference_psi(expected, actual), rel=1e-12, abs=1e-15)


def test_numeric_psi_by_hand() -> None:
    profile = profile_of({"n": np.arange(10, dtype=float)}, kinds={"n": "numeric"})
    monitor = DriftMonitor(profile, window=100)
    monitor.observe({"n": np.array([-5.0, 0.0, 0.5, 9.0, 20.0, NAN, NAN, NAN])}, None)
    drift = monitor.compute().features["n"]
    # bins [-inf,1), [1,2) ... [9,inf), then missing; below-min and above-max join the end bins
    actual = [3 / 8] + [0.0] * 8 + [2 / 8] + [3 / 8]
    assert drift.psi == pytest.approx(reference_psi([0.1] * 10 + [0.0], actual), rel=1e-12)
    assert drift.to_dict() == {"kind": "numeric", "psi": drift.psi, "missing_share": 3 / 8,
                               "out_of_range_share": 2 / 8}


@pytest.mark.parametrize(
    ("live", "actual"),
    [
        # bins [-inf,1) (half of training), [1,2) ... [5,inf) (a tenth each), then missing
        pytest.param([-5.0, 20.0, 20.0, 20.0], [1 / 4, 0, 0, 0, 0, 3 / 4, 0], id="one-below-three-above"),
        pytest.param([-5.0, -6.0, -7.0, 20.0], [3 / 4, 0, 0, 0, 0, 1 / 4, 0], id="three-below-one-above"),
        pytest.param([-1.0, 0.0, 3.0, 99.0], [2 / 4, 0, 0, 1 / 4, 0, 1 / 4, 0], id="below-into-first-above-into-last"),
    ],
)
def test_out_of_range_values_join_their_own_end_bin(live: list[float], actual: list[float]) -> None:
    # Skewed training (the first bin holds half of it), so putting below-min rows in the last bin
    # or above-max rows in the first one changes the PSI: a symmetric profile would hide the swap.
    profile = profile_of({"n": np.array([0.0] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0])}, kinds={"n": "numeric"})
    assert profile.features["n"].expected.tolist() == [0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0]
    monitor = DriftMonitor(profile, window=100)
    monitor.observe({"n": np.array(live)}, None)
    drift = monitor.compute().features["n"]
    assert drift.psi == pytest.approx(reference_psi([0.5] + [0.1] * 5 + [0.0], actual), rel=1e-12)
    outside = sum(1 for v in live if v < 0.0 or v > 5.0) / len(live)
    assert drift.unusual_share == outside


@pytest.mark.parametrize(
    ("live", "actual", "unknown", "missing"),
    [
        # slots: 1 (int, the most frequent), "a", "b", unknown, missing
        pytest.param(["a", "b"], [0, 0.5, 0.5, 0, 0], 0.0, 0.0, id="all-known"),
        pytest.param(["a", "zz", None, NAN], [0, 0.25, 0, 0.25, 0.5], 0.25, 0.5, id="unknown-none-and-nan"),
        pytest.param([np.str_("a"), np.int64(1), 1, True], [0.5, 0.25, 0, 0.25, 0], 0.25, 0.0,
                     id="numpy-scalars-match"),
        pytest.param([1.0, False, "1", b"a"], [0, 0, 0, 1, 0], 1.0, 0.0, id="type-aware"),
    ],
)
def test_categorical_shares(live: list[object], actual: list[float], unknown: float, missing: float) -> None:
    profile = profile_of({"c": objects("a", "b", 1, 1)}, kinds={"c": "categorical"})
    monitor = DriftMonitor(profile, window=10)
    monitor.observe({"c": objects(*live)}, None)
    psi = reference_psi([0.5, 0.25, 0.25, 0, 0], actual)
    assert monitor.compute().features["c"].to_dict() == {
        "kind": "categorical", "psi": pytest.approx(psi, rel=1e-12, abs=1e-15),
        "missing_share": missing, "unknown_share": unknown}


def test_empty_window_reports_nulls() -> None:
    profile = profile_of(batch([1.0, 2.0], ["a", "b"]), scores=np.array([0.2, 0.8]))
    report = DriftMonitor(profile, window=5).compute()
    assert report.to_dict() == {
        "window_size": 0,
        "features": {
            "n": {"kind": "numeric", "psi": None, "missing_share": None, "out_of_range_share": None},
            "c": {"kind": "categorical", "psi": None, "missing_share": None, "unknown_share": None},
        },
        "prediction": {"psi": None, "window_size": 0},
        "excluded": [],
    }


def test_excluded_features_are_listed_and_ignored() -> None:
    columns = {"id": objects(*[f"x{i}" for i in range(10)]), "g": objects(*"ab" * 5)}
    kinds: dict[str, Any] = {"id": "categorical", "g": "categorical"}
    monitor = DriftMonitor(parse_profile(build_profile(columns, kinds, None)), window=10)
    monitor.observe({"g": objects("a"), "id": objects("new")}, None)
    report = monitor.compute().to_dict()
    assert report["excluded"] == ["id"] and list(report["features"]) == ["g"]
    only_id = build_profile({"id": columns["id"]}, {"id": "categorical"}, None)
    nothing_left = DriftMonitor(parse_profile(only_id), window=4)
    nothing_left.observe({"id": columns["id"]}, None)
    assert nothing_left.compute().to_dict() == {
        "window_size": 4, "features": {}, "prediction": {"psi": None, "window_size": 0},
        "excluded": ["id"]}


@pytest.mark.parametrize(
    ("profile_scores", "observed", "psi_is_null", "size"),
    [
        pytest.param(True, [np.array([0.1, 0.9])], False, 2, id="scored"),
        pytest.param(True, [None], True, 0, id="scores-omitted"),
        pytest.param(True, [np.array([0.1, 0.9]), None], False, 2, id="window-counts-scored-rows"),
        pytest.param(False, [np.array([0.1, 0.9])], True, 0, id="profile-without-scores"),
    ],
)
def test_prediction_psi(profile_scores: bool, observed: list[np.ndarray | None],
                        psi_is_null: bool, size: int) -> None:
    columns = batch([1.0, 2.0, 3.0, 4.0], ["a", "b", "a", "b"])
    scores = np.array([0.1, 0.4, 0.6, 0.9]) if profile_scores else None
    monitor = DriftMonitor(profile_of(columns, scores), window=10)
    for scored in observed:
        monitor.observe(batch([1.0, 2.0], ["a", "b"]), scored)
    prediction = monitor.compute().to_dict()["prediction"]
    assert (prediction["psi"] is None) is psi_is_null
    assert prediction["window_size"] == size


@pytest.mark.parametrize(
    ("columns", "scores", "message"),
    [
        pytest.param({"n": np.ones(2)}, None, "missing from the batch", id="absent-column"),
        pytest.param({"n": np.ones(2), "c": objects("a")}, None, "2 rows", id="ragged"),
        pytest.param({"n": np.ones((2, 2)), "c": objects("a", "b")}, None, "one-dimensional",
                     id="two-dimensional"),
        pytest.param(batch([1.0], ["a"]), np.ones(3), "scores", id="score-count"),
    ],
)
def test_observe_rejects_malformed_batches(columns: dict[str, np.ndarray],
                                           scores: np.ndarray | None, message: str) -> None:
    profile = profile_of(batch([1.0, 2.0], ["a", "b"]), scores=np.array([0.2, 0.8]))
    with pytest.raises(ValueError, match=message):
        DriftMonitor(profile, window=5).observe(columns, scores)


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        DriftMonitor(profile_of(batch([1.0], ["a"])), window=0)


def test_batch_larger_than_window_keeps_its_tail() -> None:
    profile = profile_of(batch(list(range(10)), list("abcdeabcde")))
    rows = batch([float(i) for i in range(25)], list("abcde" * 5))
    whole, tail = DriftMonitor(profile, window=10), DriftMonitor(profile, window=10)
    whole.observe(rows, None)
    tail.observe({name: values[-10:] for name, values in rows.items()}, None)
    assert whole.compute().to_dict() == tail.compute().to_dict()


@given(rows_strategy, st.lists(rows_strategy, min_size=1, max_size=6), st.integers(1, 40))
@settings(max_examples=100, deadline=None)
def test_window_keeps_exactly_the_last_rows(train: list[Any], batches: list[list[Any]],
                                            window: int) -> None:
    profile = profile_of(split(train), scores=np.linspace(0, 1, len(train)))
    streamed = DriftMonitor(profile, window)
    for rows in batches:
        streamed.observe(split(rows), np.linspace(0, 1, len(rows)))
    flat = [row for rows in batches for row in rows]
    flat_scores = np.concatenate([np.linspace(0, 1, len(rows)) for rows in batches])
    fresh = DriftMonitor(profile, window)
    fresh.observe(split(flat[-window:]), flat_scores[-window:])
    assert streamed.compute().to_dict() == fresh.compute().to_dict()
    assert streamed.compute().window_size == min(window, len(flat))


@given(rows_strategy, rows_strategy)
@settings(max_examples=150, deadline=None)
def test_psi_is_never_negative(train: list[Any], live: list[Any]) -> None:
    monitor = DriftMonitor(profile_of(split(train)), window=100)
    monitor.observe(split(live), None)
    for drift in monitor.compute().features.values():
        assert drift.psi is not None and drift.psi >= 0.0


@given(rows_strategy)
@settings(max_examples=150, deadline=None)
def test_training_data_against_itself_has_no_drift(train: list[Any]) -> None:
    scores = np.linspace(0, 1, len(train))
    monitor = DriftMonitor(profile_of(split(train), scores), window=len(train))
    monitor.observe(split(train), scores)
    report = monitor.compute()
    assert all(d.psi == pytest.approx(0.0, abs=1e-12) for d in report.features.values())
    assert report.prediction_psi == pytest.approx(0.0, abs=1e-12)
    assert all(d.unusual_share == 0.0 for d in report.features.values())


@given(rows_strategy, rows_strategy, st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_psi_ignores_row_order(train: list[Any], live: list[Any], shuffle: Any) -> None:
    profile = profile_of(split(train))
    ordered, shuffled = DriftMonitor(profile, 100), DriftMonitor(profile, 100)
    ordered.observe(split(live), None)
    permuted = list(live)
    shuffle.shuffle(permuted)
    shuffled.observe(split(permuted), None)
    assert ordered.compute().to_dict() == shuffled.compute().to_dict()


def test_concurrent_observers_fill_the_window_consistently() -> None:
    profile = profile_of(batch([1.0, 2.0, 3.0], ["a", "b", "c"]))
    rows = batch([1.0, 2.0, 3.0, 4.0, NAN, 0.0, 2.0], ["a", "b", "c", "d", NAN, "a", "a"])
    shared, alone = DriftMonitor(profile, 100), DriftMonitor(profile, 100)
    for _ in range(8 * 50):
        alone.observe(rows, None)

    def observe() -> None:
        for _ in range(50):
            shared.observe(rows, None)
            shared.compute()

    threads = [threading.Thread(target=observe) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shared.compute().to_dict() == alone.compute().to_dict()
    assert shared.compute().window_size == 100


def test_compute_on_a_full_window_of_twenty_features_is_fast() -> None:
    rng = np.random.default_rng(0)
    rows = 5000
    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, Any] = {}
    for i in range(10):
        columns[f"n{i}"] = rng.normal(size=rows)
        columns[f"c{i}"] = objects(*rng.choice(["a", "b", "c", "d", "e"], size=rows).tolist())
        kinds[f"n{i}"], kinds[f"c{i}"] = "numeric", "categorical"
    monitor = DriftMonitor(parse_profile(build_profile(columns, kinds, rng.random(rows))), 1000)
    monitor.observe({name: values[:1000] for name, values in columns.items()}, rng.random(1000))
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        monitor.compute()
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.005


def real_batch() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The real CSV as a ColumnBatch (TotalCharges blanks as NaN) with its kinds."""
    if not REAL_CSV.is_file():
        pytest.skip(f"real data absent: {REAL_CSV} (the sibling `shared` of the repo root)")
    frame = pd.read_csv(REAL_CSV)
    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, Any] = {}
    for name in frame.columns.drop("Churn"):
        if name in NUMERIC:
            columns[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
            kinds[name] = "numeric"
        else:
            columns[name] = frame[name].to_numpy(dtype=object)
            kinds[name] = "categorical"
    return columns, kinds


@pytest.fixture(scope="module")
def real() -> tuple[dict[str, np.ndarray], Profile]:
    """The real columns and the profile built from all 7 043 rows."""
    columns, kinds = real_batch()
    return columns, parse_profile(build_profile(columns, kinds, None))


def test_real_random_traffic_is_stable(real: tuple[dict[str, np.ndarray], Profile]) -> None:
    columns, profile = real
    picked = np.random.default_rng(7).choice(7043, size=500, replace=False)
    monitor = DriftMonitor(profile, window=1000)
    monitor.observe({name: values[picked] for name, values in columns.items()}, None)
    report = monitor.compute()
    assert report.window_size == 500 and len(report.features) == 19
    assert report.excluded == ("customerID",)
    worst = max(report.features.items(), key=lambda item: item[1].psi or 0.0)
    assert all(d.psi is not None and d.psi <= 0.1 for d in report.features.values()), worst


def test_real_new_short_tenure_monthly_traffic_drifts(
    real: tuple[dict[str, np.ndarray], Profile],
) -> None:
    columns, profile = real
    matching = np.flatnonzero((columns["tenure"] == 1) & (columns["Contract"] == "Month-to-month"))
    picked = np.random.default_rng(7).choice(matching, size=500, replace=False)
    monitor = DriftMonitor(profile, window=1000)
    monitor.observe({name: values[picked] for name, values in columns.items()}, None)
    report = monitor.compute()
    assert report.features["tenure"].psi is not None and report.features["tenure"].psi > 0.2
    assert report.features["Contract"].psi is not None and report.features["Contract"].psi > 0.2


def test_queued_one_row_batches_report_what_one_big_batch_reports() -> None:
    """observe() queues small batches and encodes them together: the window must not notice,
    even when a numeric-category column arrives as int64 in some batches and float64 (NaN) in others."""
    rng = np.random.default_rng(7)
    rows = 3 * DriftMonitor.ENCODE_EVERY_ROWS + 17
    kinds: dict[str, Any] = {"n": "numeric", "c": "categorical", "k": "categorical"}
    training = {
        "n": rng.normal(size=500),
        "c": objects(*rng.choice(["a", "b", "c"], size=500).tolist()),
        "k": rng.integers(0, 3, size=500),
    }
    scores = rng.random(500)
    profile = profile_of(training, scores, kinds)
    live_k = rng.integers(0, 4, size=rows).astype(np.float64)  # 3 is unseen in training
    live_k[::11] = NAN
    live = {
        "n": rng.normal(0.3, 1.2, size=rows),
        "c": objects(*rng.choice(["a", "b", "c", "zz", NAN], size=rows).tolist()),
        "k": live_k,
    }
    live_scores = rng.random(rows)
    whole = DriftMonitor(profile, window=600)
    whole.observe(live, live_scores)
    one_by_one = DriftMonitor(profile, window=600)
    for i in range(rows):
        k = live["k"][i : i + 1]
        row = {
            "n": live["n"][i : i + 1],
            "c": live["c"][i : i + 1],
            "k": k if math.isnan(k[0]) else k.astype(np.int64),
        }
        one_by_one.observe(row, live_scores[i : i + 1])
    expected = whole.compute().to_dict()
    assert expected["window_size"] == 600
    # Float64 (it holds NaN) must not turn the fitted ints 0, 1, 2 into unknown categories.
    assert expected["features"]["k"]["unknown_share"] == pytest.approx(np.mean(live_k[-600:] == 3))
    assert expected["features"]["k"]["missing_share"] == pytest.approx(np.mean(np.isnan(live_k[-600:])))
    assert one_by_one.compute().to_dict() == expected


def test_a_float64_batch_beside_int64_batches_keeps_its_fitted_categories() -> None:
    """A batch that holds a NaN arrives as float64 (1.0, NaN); queued beside int64 batches it must still
    count 1.0 as the fitted category 1, not as unknown."""
    kinds: dict[str, Any] = {"k": "categorical"}
    profile = profile_of({"k": np.array([0, 1, 2, 1] * 25)}, kinds=kinds)
    mixed = DriftMonitor(profile, window=100)
    mixed.observe({"k": np.array([0, 1], dtype=np.int64)}, None)
    mixed.observe({"k": np.array([1.0, NAN, 2.0, 3.0])}, None)
    mixed.observe({"k": np.array([2], dtype=np.int64)}, None)
    report = mixed.compute().to_dict()["features"]["k"]
    assert report["unknown_share"] == pytest.approx(1 / 7)  # only the 3
    assert report["missing_share"] == pytest.approx(1 / 7)
