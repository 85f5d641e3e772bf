"""Which original input column each encoded feature came from, read off the fitted preprocessor.

A model sees encoded features (a one-hot column per category, a scaled number, an imputer's
missing-indicator); a person asks about the columns they sent. ``column_layout`` walks the fitted
ColumnTransformer / Pipeline once, at load, and records for every encoded feature the index of the
one original column it is computed from. ``ColumnLayout.fold`` then sums a contribution matrix over
each column's encoded features with one sparse product (the real preprocessor has ~5.6k one-hot
columns for ``customerID`` alone, so no per-column Python loop on the request path).

Only transformers whose every output depends on a single input column are mapped; anything else
(a PCA, a custom function) raises ``UnmappableLayout``, and the service says it cannot explain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

# Transformers that turn each input column into exactly one output column, in place.
_ONE_TO_ONE = frozenset({
    "StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "QuantileTransformer",
    "PowerTransformer", "Binarizer", "OrdinalEncoder", "TargetEncoder",
})


class UnmappableLayout(Exception):
    """The preprocessor mixes columns (or is unknown): encoded features cannot be traced to one column each."""


@dataclass(frozen=True)
class ColumnLayout:
    """Encoded feature j comes from original column ``columns[sources[j]]``."""

    columns: tuple[str, ...]
    sources: np.ndarray  # (encoded features,) int indices into columns
    _fold: scipy.sparse.csr_matrix  # (encoded features, columns), a 1 where feature j comes from column c

    @classmethod
    def of(cls, columns: Sequence[str], sources: np.ndarray) -> ColumnLayout:
        width = len(sources)
        ones = np.ones(width, dtype=np.float64)
        fold = scipy.sparse.csr_matrix((ones, (np.arange(width), sources)), shape=(width, len(columns)))
        return cls(tuple(columns), np.asarray(sources, dtype=np.intp), fold)

    @property
    def width(self) -> int:
        return len(self.sources)

    def fold(self, values: Any) -> np.ndarray:
        """(rows, encoded features) contributions → (rows, columns): each column's sum over its encoded features."""
        if scipy.sparse.issparse(values):
            return np.asarray((values @ self._fold).toarray())
        return np.asarray((self._fold.T @ np.asarray(values).T).T)


def column_layout(preprocessor: Any | None, columns: Sequence[str], width: int) -> ColumnLayout:
    """The layout of a fitted preprocessor over ``columns`` (the frame it transforms), checked against ``width``."""
    names = list(columns)
    if preprocessor is None:
        sources = np.arange(len(names))
    else:
        known = [str(n) for n in getattr(preprocessor, "feature_names_in_", names)]
        sources = _sources(preprocessor, len(known), known)
        # The preprocessor's own input order is what its indices mean; the frame order names them.
        position = {name: names.index(name) if name in names else i for i, name in enumerate(known)}
        sources = np.asarray([position[known[s]] for s in sources.tolist()], dtype=np.intp)
    if len(sources) != width:
        raise UnmappableLayout(f"the preprocessor's layout accounts for {len(sources)} of {width} encoded features")
    return ColumnLayout.of(names, sources)


def _sources(step: Any, inputs: int, names: list[str]) -> np.ndarray:
    """For each output of a fitted step, the index of the input column it comes from."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return np.arange(inputs)
    kind = type(step).__name__
    if kind == "ColumnTransformer":
        return _column_transformer(step, inputs, names)
    if kind == "Pipeline":
        sources = np.arange(inputs)
        for _, inner, *_ in step.steps:
            sources = sources[_sources(inner, len(sources), [names[s] for s in sources.tolist()])]
        return sources
    if kind == "SimpleImputer":
        return _imputer(step, inputs)
    if kind == "OneHotEncoder":
        return np.repeat(np.arange(inputs), np.asarray(step._compute_n_features_outs(), dtype=np.intp))
    if kind == "KBinsDiscretizer" and step.encode != "ordinal":
        return np.repeat(np.arange(inputs), np.asarray(step.n_bins_, dtype=np.intp))
    if kind in _ONE_TO_ONE or kind == "KBinsDiscretizer" or (kind == "FunctionTransformer" and step.func is None):
        return np.arange(inputs)
    raise UnmappableLayout(f"{kind} is not a per-column transformer the service can trace back to its input columns")


def _column_transformer(transformer: Any, inputs: int, names: list[str]) -> np.ndarray:
    parts: list[np.ndarray] = []
    for _, fitted, selection in transformer.transformers_:
        if isinstance(fitted, str) and fitted == "drop":
            continue
        picked = _indices(selection, inputs, names)
        if len(picked) == 0:
            continue  # an empty selection adds no output column
        parts.append(picked[_sources(fitted, len(picked), [names[p] for p in picked.tolist()])])
    return np.concatenate(parts) if parts else np.arange(0)


def _indices(selection: Any, inputs: int, names: list[str]) -> np.ndarray:
    """A ColumnTransformer column selection (names, indices, slice, mask, one name) as input indices."""
    if isinstance(selection, slice):
        if isinstance(selection.start, str) or isinstance(selection.stop, str):
            start = 0 if selection.start is None else names.index(selection.start)
            stop = inputs if selection.stop is None else names.index(selection.stop) + 1
            return np.arange(start, stop)
        return np.arange(inputs)[selection]
    if isinstance(selection, (str, int, np.integer)):
        selection = [selection]
    chosen = list(np.asarray(selection).tolist()) if not isinstance(selection, list) else selection
    if chosen and all(isinstance(c, bool) for c in chosen):
        return np.flatnonzero(np.asarray(chosen))
    return np.asarray([names.index(str(c)) if isinstance(c, str) else int(c) for c in chosen], dtype=np.intp)


def _imputer(imputer: Any, inputs: int) -> np.ndarray:
    """A SimpleImputer drops features it saw only missing (unless told to keep them), then appends indicators."""
    kept = np.arange(inputs)
    if imputer.strategy != "constant" and not getattr(imputer, "keep_empty_features", False):
        kept = np.asarray([i for i, v in enumerate(imputer.statistics_.tolist()) if not _missing(v)], dtype=np.intp)
    indicator = getattr(imputer, "indicator_", None)
    if getattr(imputer, "add_indicator", False) and indicator is not None:
        kept = np.concatenate([kept, np.asarray(indicator.features_, dtype=np.intp)])
    return kept


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
