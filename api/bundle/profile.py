"""The training-data profile that drift is measured against: the profile.json format, read, checked and written.

Building a profile from training columns is in profiling.py.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import numpy as np

FORMAT_VERSION = 1
Kind = Literal["numeric", "categorical"]
CategoryValue = str | int | float | bool
CategoryKey = tuple[type, CategoryValue]

# Category types by their JSON name; the type travels with the value so 1, 1.0, True and "1"
# stay four different categories (Python's == and hash would merge the first three).
CATEGORY_TYPES: Mapping[str, type] = MappingProxyType(
    {"bool": bool, "int": int, "float": float, "str": str}
)
_EXACT_TYPES = frozenset(CATEGORY_TYPES.values())  # subclasses (enums, numpy) are not categories
_SHARE_TOLERANCE = 1e-6


class ProfileError(ValueError):
    """A profile document is malformed or inconsistent."""


def category_key(value: object) -> CategoryKey | None:
    """Type-aware lookup key of a category value (numpy scalars unwrapped), None if unsupported."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float)) and type(value) in _EXACT_TYPES:
        return type(value), value
    return None


@dataclass(frozen=True)
class NumericFeature:
    """Quantile bins of a numeric column: PSI slots are the bins, then missing."""

    edges: np.ndarray  # interior edges, strictly increasing; bin i is [edges[i-1], edges[i])
    expected: np.ndarray  # training share per bin, then the missing share; sums to 1
    minimum: float  # +inf / -inf when training had no values, so every value is out of range
    maximum: float

    kind: ClassVar[Literal["numeric"]] = "numeric"


@dataclass(frozen=True)
class CategoricalFeature:
    """Category frequencies of a categorical column: PSI slots are the categories, unknown, missing."""

    categories: tuple[CategoryValue, ...]
    index: Mapping[CategoryKey, int]
    expected: np.ndarray  # training share per category, then unknown (0), then missing

    kind: ClassVar[Literal["categorical"]] = "categorical"


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class Profile:
    """A validated, immutable profile with its lookups precomputed for the drift monitor."""

    rows: int
    bins: int
    features: Mapping[str, Feature]
    excluded: Mapping[str, Mapping[str, Any]]
    prediction: NumericFeature | None
    sample_rows: tuple[Mapping[str, Any], ...]
    sample_scores: tuple[float, ...] | None


def save_profile(profile: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Validate and write a profile as deterministic JSON (sorted keys), atomically."""
    parse_profile(profile)
    text = json.dumps(profile, sort_keys=True, indent=1, allow_nan=False) + "\n"
    target = Path(path)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    temporary = Path(name)
    written = False
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        temporary.chmod(0o644)  # mkstemp makes it owner-only; the service user must read it
        temporary.replace(target)  # readers see the old file or the new one, never half of one
        written = True
    finally:
        if not written:
            temporary.unlink(missing_ok=True)


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate profile.json."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"cannot read profile {os.fspath(path)!r}: {exc}") from exc
    return parse_profile(document)


def parse_profile(document: object) -> Profile:
    """Validate a profile document and precompute its per-feature lookups."""
    doc = _mapping(document, "profile")
    _check(doc.get("format_version") == FORMAT_VERSION, f"format_version must be {FORMAT_VERSION}")
    rows, bins = _count(doc.get("rows"), "rows", 1), _count(doc.get("bins"), "bins", 2)
    features: dict[str, Feature] = {}
    for name, spec in _mapping(doc.get("features"), "features").items():
        where = f"feature {name!r}"
        spec = _mapping(spec, where)
        if spec.get("kind") == "numeric":
            features[name] = _parse_numeric(spec, where)
        elif spec.get("kind") == "categorical":
            features[name] = _parse_categorical(spec, where)
        else:
            raise ProfileError(f"invalid profile: {where}: kind must be numeric or categorical")
    excluded = {
        name: MappingProxyType(dict(_mapping(info, f"excluded {name!r}")))
        for name, info in _mapping(doc.get("excluded"), "excluded").items()
    }
    _check(not set(excluded) & set(features), "a feature cannot be both profiled and excluded")
    prediction = doc.get("prediction")
    sample = _mapping(doc.get("sample"), "sample")
    rows_list, scores = sample.get("rows"), sample.get("scores")
    if not isinstance(rows_list, list):
        raise ProfileError("invalid profile: sample.rows must be a list")
    sample_rows = tuple(MappingProxyType(dict(_mapping(r, "sample row"))) for r in rows_list)
    if scores is not None:
        _check(isinstance(scores, list) and len(scores) == len(sample_rows)
               and all(s is None or _is_number(s) for s in scores),
               "sample.scores must be null or one number (or null) per sample row")
    return Profile(
        rows=rows,
        bins=bins,
        features=MappingProxyType(features),
        excluded=MappingProxyType(excluded),
        prediction=None if prediction is None else _parse_numeric(
            _mapping(prediction, "prediction"), "prediction"
        ),
        sample_rows=sample_rows,
        sample_scores=None if scores is None else tuple(scores),
    )


def _parse_numeric(spec: Mapping[str, Any], where: str) -> NumericFeature:
    edges = _floats(spec.get("edges"), f"{where}: edges")
    shares = _floats(spec.get("shares"), f"{where}: shares")
    _check(bool(np.all(np.isfinite(edges))), f"{where}: edges must be finite")
    _check(bool(np.all(np.diff(edges) > 0)), f"{where}: edges must strictly increase")
    _check(shares.size == edges.size + 1, f"{where}: need one share per bin (len(edges) + 1)")
    expected = _distribution(shares, spec.get("missing_share"), where)
    low, high = spec.get("min"), spec.get("max")
    if low is None and high is None:  # no values in training: everything is out of range
        _check(edges.size == 0, f"{where}: edges without min/max")
        return NumericFeature(edges=edges, expected=expected, minimum=math.inf, maximum=-math.inf)
    minimum, maximum = _number(low, f"{where}: min"), _number(high, f"{where}: max")
    _check(minimum <= maximum, f"{where}: min above max")
    _check(edges.size == 0 or (minimum < edges[0] and edges[-1] <= maximum),
           f"{where}: edges must lie in (min, max]")
    return NumericFeature(edges=edges, expected=expected, minimum=minimum, maximum=maximum)


def _parse_categorical(spec: Mapping[str, Any], where: str) -> CategoricalFeature:
    entries = spec.get("categories")
    if not isinstance(entries, list):
        raise ProfileError(f"invalid profile: {where}: categories must be a list")
    categories: list[CategoryValue] = []
    shares: list[object] = []
    index: dict[CategoryKey, int] = {}
    for raw in entries:
        entry = _mapping(raw, f"{where}: category")
        cls, value = CATEGORY_TYPES.get(entry.get("type", ""), type(None)), entry.get("value")
        if cls is float and _is_number(value):
            value = _number(value, where)  # a hand-edited 1 for 1.0 is still the float 1.0
        key = category_key(value)
        if key is None or key[0] is not cls:
            raise ProfileError(f"invalid profile: {where}: category {entry!r} has a bad type")
        _check(key not in index, f"{where}: category {value!r} listed twice")
        index[key] = len(categories)
        categories.append(key[1])
        shares.append(entry.get("share"))
    unknown = 0.0  # nothing was unknown in training; the slot exists for live traffic
    expected = _distribution(
        np.append(_floats(shares, f"{where}: shares"), unknown), spec.get("missing_share"), where
    )
    return CategoricalFeature(
        categories=tuple(categories), index=MappingProxyType(index), expected=expected
    )


def _distribution(shares: np.ndarray, missing: object, where: str) -> np.ndarray:
    """Shares with the missing share appended, checked to be a distribution, read-only."""
    expected = np.append(shares, _number(missing, f"{where}: missing_share"))
    _check(bool(np.all(expected >= 0)), f"{where}: shares must be non-negative")
    _check(abs(float(expected.sum()) - 1.0) <= _SHARE_TOLERANCE, f"{where}: shares must sum to 1")
    expected.setflags(write=False)
    return expected


def _floats(values: object, where: str) -> np.ndarray:
    _check(isinstance(values, list) and all(_is_number(v) for v in values),
           f"{where} must be a list of numbers")
    array = np.array(values, dtype=np.float64).reshape(-1)
    array.setflags(write=False)
    return array


def _count(value: object, where: str, least: int) -> int:
    if type(value) is not int or value < least:
        raise ProfileError(f"invalid profile: {where} must be an integer >= {least}")
    return value


def _number(value: object, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ProfileError(f"invalid profile: {where} must be a number")
    return float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProfileError(f"invalid profile: {where} must be an object")
    return value


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ProfileError(f"invalid profile: {message}")
