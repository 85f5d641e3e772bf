"""The validated column batch: the one in-memory form of input rows every path consumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

# One 1-D array per input column, all of the same length:
# - numeric columns: float64, NaN where the value was null;
# - categorical columns: dtype object, holding the fitted category type (str, int, float,
#   bool) or float("nan") where the value was null.
ColumnBatch = Mapping[str, np.ndarray]


def batch_length(columns: ColumnBatch) -> int:
    """Number of rows in a column batch."""
    for values in columns.values():
        return int(values.shape[0])
    return 0


def to_frame(columns: ColumnBatch, order: Sequence[str]) -> pd.DataFrame:
    """The DataFrame the library path hands to scikit-learn, columns in fitted order."""
    return pd.DataFrame({name: columns[name] for name in order}, columns=list(order), copy=False)
