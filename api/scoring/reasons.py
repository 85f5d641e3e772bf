"""``--explain N``: reason columns beside a scored batch, the same exact contributions as POST /predict?explain=N.

Per row: ``base_value``, then for i in 1..N ``reason_<i>_feature`` (the input column),
``reason_<i>_value`` (its cell as the file holds it, as text) and ``reason_<i>_contribution`` (float64,
on the raw-score scale). N is clamped to the model's columns once, at the start, so every chunk has
the same columns. The value is text because one ``reason_<i>_value`` column holds cells of different
input columns (a number on one row, a category on the next); a CSV cell is kept exactly as written
(a blank ``TotalCharges`` stays ``" "``), a typed Parquet cell is written as its JSON spelling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from api.errors import ExplanationUnavailableError
from api.model.explain import batch_contributions, strongest
from api.model.loaded import LoadedModel
from api.model.validation import ValidatedBatch

# Contributions are one float64 per encoded feature and row before folding (5 654 for the real
# model: 45 MB per 1 000 rows), so a large chunk (or a Spark batch) is explained in slices.
SLICE_ROWS = 1_000
# Explaining costs 10-25 ms per row on the real model: chunks of 500 keep the progress bar moving
# every few seconds instead of every few minutes (20 000 rows per chunk).
EXPLAIN_CHUNK_ROWS = 500


def reason_names(count: int) -> list[str]:
    """The explain columns, in output order."""
    names = ["base_value"]
    for i in range(1, count + 1):
        names += [f"reason_{i}_feature", f"reason_{i}_value", f"reason_{i}_contribution"]
    return names


def as_text(cell: Any) -> str | None:
    """A cell as text: CSV text unchanged; a typed Parquet value as JSON spells it; missing as null."""
    if cell is None or isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        return None if math.isnan(cell) else repr(cell)  # repr: the shortest text that reads back as this double
    return str(cell)


class ReasonColumns:
    """One job's explain columns: refused at the start for a model that cannot explain, then filled per batch."""

    def __init__(self, model: LoadedModel, top: int) -> None:
        layout = model.layout
        if isinstance(layout, str):
            raise ExplanationUnavailableError(f"--explain is not possible with this model: {layout}")
        self.model = model
        self.count = max(1, min(top, len(layout.columns)))
        self.names = reason_names(self.count)

    def columns(
        self, batch: ValidatedBatch, predicted: Sequence[Any], cells: Mapping[str, Sequence[Any]], rows: Sequence[int]
    ) -> dict[str, Any]:
        """The explain columns of ``batch``, whose row r is row ``rows[r]`` of ``cells`` (the chunk as read)."""
        base: list[np.ndarray] = []
        features: list[list[str]] = [[] for _ in range(self.count)]
        values: list[list[str | None]] = [[] for _ in range(self.count)]
        shares: list[list[np.ndarray]] = [[] for _ in range(self.count)]
        for start in range(0, batch.size, SLICE_ROWS):
            stop = min(start + SLICE_ROWS, batch.size)
            part = {name: column[start:stop] for name, column in batch.columns.items()}
            explained = batch_contributions(self.model, part, stop - start, predicted[start:stop])
            order = strongest(explained, self.count)
            base.append(explained.base)
            span = np.arange(stop - start)
            for i in range(self.count):
                picked = order[:, i]
                names = [explained.columns[c] for c in picked.tolist()]
                features[i] += names
                values[i] += [as_text(cells[n][rows[start + r]]) for r, n in enumerate(names)]
                shares[i].append(explained.contributions[span, picked])
        out: dict[str, Any] = {"base_value": np.concatenate(base).astype(np.float64)}
        for i in range(self.count):
            out[f"reason_{i + 1}_feature"] = features[i]
            out[f"reason_{i + 1}_value"] = values[i]
            out[f"reason_{i + 1}_contribution"] = np.concatenate(shares[i]).astype(np.float64)
        return out
