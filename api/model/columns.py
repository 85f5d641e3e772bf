"""The validated column batch: the one in-memory form of input rows every path consumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

# One 1-D array per input column, all of the same length:
# - numeric columns: float64, NaN where the value was null;
# - categorical columns whose encoder was fitted on an object array: dtype object, holding the
#   fitted category type (str, int, float, bool) or float("nan") where the value was null;
# - categorical columns whose encoder was fitted on a numeric array (e.g. a DataFrame int64
#   column fed straight to OneHotEncoder): int64 (or bool) when no value is null, else float64
#   with NaN, because scikit-learn's lookups compare the input dtype with the categories' dtype.
ColumnBatch = Mapping[str, np.ndarray]


def batch_length(columns: ColumnBatch) -> int:
    """Number of rows in a column batch."""
    for values in columns.values():
        return int(values.shape[0])
    return 0


def to_frame(columns: ColumnBatch, order: Sequence[str]) -> pd.DataFrame:
    """The DataFrame the library path hands to scikit-learn, columns in fitted order."""
    return pd.DataFrame({name: columns[name] for name in order}, columns=list(order), copy=False)
