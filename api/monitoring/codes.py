"""Profiled features laid side by side in one integer code space: values to slot codes, codes to PSI.

Each feature's slots are its bins (numeric) or categories, then unknown / out of range, then
missing; one ``np.bincount`` over the shared space counts every feature of a window at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import repeat

import numpy as np
import pandas as pd

from api.bundle.profile import CategoricalFeature, Feature, NumericFeature, category_key

# Floor for a bin's share on both sides before the logarithm: an empty bin would otherwise
# make PSI infinite. With the floor each term (a - e) * ln(a / e) stays >= 0, so PSI >= 0.
EPSILON = 1e-4


class CodeSpace:
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
        return self.summarise_counts(self.count(codes), codes.shape[1])

    def count(self, codes: np.ndarray) -> np.ndarray:
        """How many times each code occurs in a (features, rows) block: what replicas add up."""
        return np.bincount(codes.ravel(), minlength=self.size).astype(np.int64)

    def summarise_counts(self, counts: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """PSI, missing share and unusual share per feature from code counts over ``rows`` rows."""
        slot_counts = np.bincount(self.slot_of_code, weights=counts, minlength=self.slots)
        actual = np.maximum(slot_counts / rows, EPSILON)
        terms = (actual - self.expected) * (np.log(actual) - self.log_expected)
        psi = np.add.reduceat(terms, self.starts) if self.starts.size else np.empty(0)
        unusual = np.bincount(self.unusual_owner, weights=counts[self.unusual_codes], minlength=len(self.features))
        return psi, counts[self.missing_codes] / rows, unusual / rows


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
