"""The training profile: binning, typed categories, ID-like exclusion, sample, JSON round trip."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from api.bundle.profile import (
    CategoricalFeature,
    NumericFeature,
    ProfileError,
    category_key,
    load_profile,
    parse_profile,
    save_profile,
)
from api.bundle.profiling import build_profile

ROOT = Path(__file__).resolve().parents[2]
REAL_CSV = ROOT.parent / "shared" / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
NUMERIC = ("tenure", "MonthlyCharges", "TotalCharges")
NAN = float("nan")


def objects(*values: object) -> np.ndarray:
    """A categorical column as the ColumnBatch contract has it."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def numeric_profile(values: list[float], bins: int = 10) -> dict[str, Any]:
    """The profile entry of one numeric column."""
    column = np.array(values, dtype=np.float64)
    return build_profile({"x": column}, {"x": "numeric"}, None, bins=bins)["features"]["x"]


def small_profile() -> dict[str, Any]:
    """A valid profile of a tiny mixed batch, with scores."""
    columns = {
        "n": np.array([1.0, 2.0, 3.0, NAN, 5.0, 6.0]),
        "c": objects("a", "b", "a", NAN, 1, True),
    }
    kinds: dict[str, Any] = {"n": "numeric", "c": "categorical"}
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    return build_profile(columns, kinds, scores, max_unique_share=None)


def real_batch() -> tuple[dict[str, np.ndarray], dict[str, Any], pd.DataFrame]:
    """The real CSV as a ColumnBatch (TotalCharges blanks as NaN), its kinds and the frame."""
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
    return columns, kinds, frame


@pytest.mark.parametrize(
    ("values", "edges", "shares", "missing"),
    [
        pytest.param([float(v) for v in range(1, 11)], list(range(2, 11)), [0.1] * 10, 0.0,
                     id="deciles-of-1-to-10"),
        pytest.param([0.0] * 8 + [1.0] * 2, [1.0], [0.8, 0.2], 0.0, id="binary-deduplicated"),
        pytest.param([7.0] * 5, [], [1.0], 0.0, id="constant-one-bin"),
        pytest.param([NAN, NAN], [], [0.0], 1.0, id="all-missing"),
        pytest.param([1.0, NAN, 2.0, NAN], [2.0], [0.25, 0.25], 0.5, id="half-missing"),
        pytest.param([0.0, 0.0, 0.0, 10.0, 10.0, 10.0], [10.0], [0.5, 0.5], 0.0,
                     id="no-empty-bin-between-clusters"),
    ],
)
def test_numeric_bins(values: list[float], edges: list[float], shares: list[float],
                      missing: float) -> None:
    entry = numeric_profile(values)
    assert entry["edges"] == pytest.approx(edges)
    assert entry["shares"] == pytest.approx(shares)
    assert entry["missing_share"] == pytest.approx(missing)


def test_numeric_min_max_and_null_range() -> None:
    entry = numeric_profile([3.0, -1.0, 8.0])
    assert (entry["min"], entry["max"]) == (-1.0, 8.0)
    entry = numeric_profile([NAN])
    assert (entry["min"], entry["max"]) == (None, None)
    parsed = parse_profile(build_profile({"x": np.array([NAN])}, {"x": "numeric"}, None)).features["x"]
    assert isinstance(parsed, NumericFeature)
    assert parsed.minimum == math.inf and parsed.maximum == -math.inf


@given(hnp.arrays(np.float64, st.integers(1, 300),
                  elements=st.floats(-1e6, 1e6) | st.just(NAN)),
       st.integers(2, 20))
@settings(max_examples=150, deadline=None)
def test_every_training_bin_is_populated(values: np.ndarray, bins: int) -> None:
    entry = numeric_profile(values.tolist(), bins=bins)
    edges = np.array(entry["edges"])
    assert np.all(np.diff(edges) > 0)
    assert len(entry["shares"]) == edges.size + 1 <= bins
    if not np.all(np.isnan(values)):
        assert all(share > 0 for share in entry["shares"])
        assert edges.size == 0 or entry["min"] < edges[0]
    assert sum(entry["shares"]) + entry["missing_share"] == pytest.approx(1.0)


def test_categories_keep_their_type() -> None:
    columns = {"c": objects(1, "1", True, 1.0, 1, NAN, None)}
    profile = build_profile(columns, {"c": "categorical"}, None, max_unique_share=None)
    entries = profile["features"]["c"]["categories"]
    assert entries[0] == {"type": "int", "value": 1, "share": pytest.approx(2 / 7)}
    assert {(e["type"], e["value"]) for e in entries} == {
        ("int", 1), ("str", "1"), ("bool", True), ("float", 1.0)}
    assert profile["features"]["c"]["missing_share"] == pytest.approx(2 / 7)
    parsed = parse_profile(json.loads(json.dumps(profile)))
    feature = parsed.features["c"]
    assert isinstance(feature, CategoricalFeature)
    assert len(feature.index) == 4
    assert feature.index[(bool, True)] != feature.index[(int, 1)] != feature.index[(float, 1.0)]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        pytest.param(np.int64(3), (int, 3), id="numpy-int-unwrapped"),
        pytest.param(np.str_("a"), (str, "a"), id="numpy-str-unwrapped"),
        pytest.param(np.bool_(True), (bool, True), id="numpy-bool-unwrapped"),
        pytest.param(float("inf"), None, id="infinite-float"),
        pytest.param(NAN, None, id="nan"),
        pytest.param(None, None, id="none"),
        pytest.param(b"x", None, id="bytes"),
    ],
)
def test_category_key(value: object, key: object) -> None:
    assert category_key(value) == key


def test_unsupported_category_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported category"):
        build_profile({"c": objects(b"x")}, {"c": "categorical"}, None)


@pytest.mark.parametrize(
    ("limit", "excluded"),
    [
        pytest.param(0.5, ["id"], id="id-like-excluded"),
        pytest.param(None, [], id="rule-disabled"),
    ],
)
def test_id_like_columns(limit: float | None, excluded: list[str]) -> None:
    columns = {"id": objects(*[f"c{i}" for i in range(10)]), "g": objects(*"ab" * 5)}
    kinds: dict[str, Any] = {"id": "categorical", "g": "categorical"}
    profile = build_profile(columns, kinds, None, max_unique_share=limit)
    assert list(profile["excluded"]) == excluded
    assert set(profile["features"]) == {"id", "g"} - set(excluded)
    if excluded:
        assert profile["excluded"]["id"] == {"kind": "categorical", "reason": "id_like",
                                             "unique": 10}
    assert parse_profile(profile).excluded.keys() == set(excluded)


def test_sample_is_deterministic_json_safe_and_bounded(tmp_path: Path) -> None:
    rows = 50
    columns = {"n": np.where(np.arange(rows) % 7 == 0, NAN, np.arange(rows, dtype=float)),
               "c": objects(*[i % 3 for i in range(rows)])}
    kinds: dict[str, Any] = {"n": "numeric", "c": "categorical"}
    scores = np.linspace(0, 1, rows)
    first = build_profile(columns, kinds, scores, sample_rows=10, seed=3, max_unique_share=None)
    again = build_profile(columns, kinds, scores, sample_rows=10, seed=3, max_unique_share=None)
    other = build_profile(columns, kinds, scores, sample_rows=10, seed=4, max_unique_share=None)
    assert first == again
    assert first["sample"]["rows"] != other["sample"]["rows"]
    sample = first["sample"]
    assert len(sample["rows"]) == len(sample["scores"]) == 10
    for row, score in zip(sample["rows"], sample["scores"], strict=True):
        index = int(score * (rows - 1) + 0.5)
        assert row["c"] == index % 3 and type(row["c"]) is int
        assert row["n"] == (None if index % 7 == 0 else float(index))
    json.dumps(first, allow_nan=False)
    everything = build_profile(columns, kinds, None, sample_rows=500, max_unique_share=None)
    assert len(everything["sample"]["rows"]) == rows and everything["sample"]["scores"] is None


def test_save_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    profile = small_profile()
    save_profile(profile, tmp_path / "a.json")
    save_profile(copy.deepcopy(profile), tmp_path / "b.json")
    text = (tmp_path / "a.json").read_text()
    assert text == (tmp_path / "b.json").read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=1) + "\n"
    loaded = load_profile(tmp_path / "a.json")
    assert loaded.rows == 6 and loaded.bins == 10
    assert loaded.prediction is not None and loaded.sample_scores is not None
    assert loaded.sample_rows[3] == {"n": None, "c": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temp files left


def test_loaded_profile_is_immutable() -> None:
    profile = parse_profile(small_profile())
    feature = profile.features["n"]
    with pytest.raises(ValueError, match="read-only"):
        feature.expected[0] = 1.0
    with pytest.raises(TypeError):
        profile.features["x"] = feature  # type: ignore[index]


def _mutate(path: str, value: object) -> dict[str, Any]:
    profile = small_profile()
    *parents, last = path.split(".")
    target: Any = profile
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return profile


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        pytest.param("format_version", 2, "format_version", id="future-format"),
        pytest.param("rows", 0, "rows", id="no-rows"),
        pytest.param("bins", True, "bins", id="bool-bins"),
        pytest.param("features.n.kind", "text", "kind", id="unknown-kind"),
        pytest.param("features.n.edges", [3.0, 2.0], "increase", id="decreasing-edges"),
        pytest.param("features.n.shares", [0.5, 0.5, 0.5], "one share per bin", id="share-count"),
        pytest.param("features.n.missing_share", 0.9, "sum to 1", id="shares-not-summing"),
        pytest.param("features.n.min", 100.0, "min above max", id="min-above-max"),
        pytest.param("features.n.edges", [1e9, 2e9, 3e9, 4e9], "edges must lie", id="edges-out"),
        pytest.param("features.c.categories.0.type", "bytes", "bad type", id="unknown-type"),
        pytest.param("features.c.categories.0.value", 1, "bad type", id="type-mismatch"),
        pytest.param("features.c.categories.1", {"type": "str", "value": "a", "share": 1 / 6},
                     "listed twice", id="duplicate"),
        pytest.param("features.c.categories", {}, "must be a list", id="categories-object"),
        pytest.param("excluded", {"n": {"reason": "x"}}, "both", id="profiled-and-excluded"),
        pytest.param("sample.scores", [0.5], "sample.scores", id="score-count"),
        pytest.param("sample.rows", _DELETE, "sample.rows", id="no-sample-rows"),
        pytest.param("prediction", [], "prediction", id="prediction-not-object"),
    ],
)
def test_invalid_profiles_are_rejected(path: str, value: object, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(_mutate(path, value))


def test_save_refuses_an_invalid_profile(tmp_path: Path) -> None:
    with pytest.raises(ProfileError):
        save_profile(_mutate("rows", -1), tmp_path / "profile.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text",
    [pytest.param("{not json", id="not-json"), pytest.param("[]", id="not-an-object")],
)
def test_load_rejects_unreadable_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(text)
    with pytest.raises(ProfileError):
        load_profile(path)


@pytest.mark.parametrize(
    ("columns", "kinds", "scores", "message"),
    [
        pytest.param({"a": np.ones(3)}, {"b": "numeric"}, None, "missing", id="absent-column"),
        pytest.param({"a": np.ones(3)}, {"a": "text"}, None, "kind", id="bad-kind"),
        pytest.param({"a": np.ones(3)}, {"a": "numeric"}, np.ones(2), "scores", id="short-scores"),
        pytest.param({"a": np.ones(0)}, {"a": "numeric"}, None, "at least one row", id="empty"),
        pytest.param({"a": np.ones(3), "b": np.ones(2)}, {"a": "numeric", "b": "numeric"}, None,
                     "3 rows", id="ragged"),
    ],
)
def test_build_rejects_bad_input(columns: dict[str, np.ndarray], kinds: dict[str, Any],
                                 scores: np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_profile(columns, kinds, scores)


def test_real_data_profile(tmp_path: Path) -> None:
    columns, kinds, frame = real_batch()
    profile = build_profile(columns, kinds, None)
    assert profile["rows"] == 7043
    assert profile["excluded"] == {"customerID": {"kind": "categorical", "reason": "id_like",
                                                  "unique": 7043}}
    assert len(profile["features"]) == 19
    assert profile["features"]["TotalCharges"]["missing_share"] == pytest.approx(11 / 7043)
    assert profile["features"]["tenure"]["min"] == 0.0
    senior = profile["features"]["SeniorCitizen"]["categories"]
    assert {(e["type"], e["value"]) for e in senior} == {("int", 0), ("int", 1)}
    assert len(profile["sample"]["rows"]) == 200
    assert set(profile["sample"]["rows"][0]) == set(frame.columns.drop("Churn"))
    save_profile(profile, tmp_path / "profile.json")
    loaded = load_profile(tmp_path / "profile.json")
    assert set(loaded.features) == set(profile["features"])
