"""Reason codes: per row, the original columns that moved the model's raw score most, and by how much.

``explain_records`` is the one entry point (POST /predict?explain=N uses it; so can any protocol):
given the LoadedModel that answered (the same object, so the same version even during a hot swap)
and the records it answered, it validates and transforms them exactly as the request path did, asks
the model's kind for its exact contributions on the raw-score scale, folds encoded features back to
the columns they came from (attribution.py), and keeps the ``top`` columns by absolute contribution.
It never touches the probabilities: they come from the prediction itself.
The file scorer explains rows it has already validated with ``batch_contributions`` (api/scoring/reasons.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.errors import ExplanationUnavailableError, InvalidExplainError
from api.model.attribution import ColumnLayout, UnmappableLayout, column_layout
from api.model.columns import ColumnBatch
from api.model.kinds import CannotExplain, Contributions
from api.model.loaded import LoadedModel
from api.model.predictor import Predictor

MAX_DIGITS = 9  # a longer count is simply "all columns" (and int() of a huge text is refused by Python)


@dataclass(frozen=True, slots=True)
class Reason:
    """One original column's share of the raw score: the value the client sent and its signed contribution."""

    feature: str
    value: Any
    contribution: float

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "contribution": self.contribution}


@dataclass(frozen=True, slots=True)
class RowExplanation:
    """A row's strongest reasons, its base value, and (multiclass) the class whose raw score they explain."""

    reasons: list[Reason]
    base_value: float
    explained_class: str | None = None


@dataclass(frozen=True, slots=True)
class Explained:
    """Every column's contribution for a batch (rows × columns), the base values, and the output each row explains."""

    columns: tuple[str, ...]
    contributions: np.ndarray  # (rows, columns), on the raw-score scale
    base: np.ndarray  # (rows,)
    outputs: np.ndarray  # (rows,) the model output (class index for multiclass, else 0) each row explains


def requested_reasons(sent: object, *, where: str = "query") -> int:
    """The number of reasons a client asked for (a whole number >= 1, as JSON or query text); 422 otherwise.

    More than the model has columns is not an error: every column is returned. ``where`` names the
    parameter's place in the error ("query" for /predict, "request" for a V2 request parameter).
    """
    if isinstance(sent, str):
        text = sent.strip()
        if text.isascii() and text.isdigit():  # not "²" or "٣", which str.isdigit also accepts
            sent = int(text) if len(text) <= MAX_DIGITS else 10**MAX_DIGITS  # more than any model has columns
    if isinstance(sent, bool) or not isinstance(sent, int) or sent < 1:
        raise InvalidExplainError(str(sent), where=where)
    return sent


def layout_for(predictor: Predictor, frame_order: Sequence[str], width: int) -> ColumnLayout | str:
    """At load: the column layout of the ``width`` encoded features, or why this model cannot explain itself."""
    if isinstance(predictor.explain, CannotExplain):
        return predictor.explain.message
    try:
        return column_layout(predictor.preprocessor, frame_order, width)
    except UnmappableLayout as exc:
        return str(exc)
    except (AttributeError, TypeError, ValueError) as exc:  # a fitted state this release lays out differently
        return f"the preprocessor's layout could not be read ({type(exc).__name__})"


def contributions(model: LoadedModel, records: Sequence[Any], predicted: Sequence[Any] | None = None) -> Explained:
    """Every original column's exact contribution for each record, folded from the encoded features."""
    _layout(model)  # a model that cannot explain says so before the records are looked at
    validated = model.validator.validate(records)
    return batch_contributions(model, validated.columns, validated.size, predicted)


def batch_contributions(
    model: LoadedModel, columns: ColumnBatch, rows: int, predicted: Sequence[Any] | None = None
) -> Explained:
    """``contributions`` of rows already validated (the file scorer's batches), transformed as predict does."""
    layout = _layout(model)
    predictor = model.predictor
    found: Contributions = predictor.explain(predictor.transform(columns))
    outputs = _explained_outputs(predictor, found, predicted, rows)
    picked = found.values[np.arange(rows), outputs, :]  # (rows, encoded features)
    return Explained(layout.columns, layout.fold(picked), found.base[np.arange(rows), outputs], outputs)


def strongest(explained: Explained, top: int) -> np.ndarray:
    """Per row, the column indices of the ``top`` largest absolute contributions (``top`` clamped to the columns)."""
    keep = max(1, min(top, len(explained.columns)))
    # Stable on ties: equal contributions keep the input's column order.
    return np.argsort(-np.abs(explained.contributions), axis=1, kind="stable")[:, :keep]


def _layout(model: LoadedModel) -> ColumnLayout:
    if isinstance(model.layout, str):
        raise ExplanationUnavailableError(model.layout)
    return model.layout


def explain_records(
    model: LoadedModel, records: Sequence[Any], top: int, predicted: Sequence[Any] | None = None
) -> list[RowExplanation]:
    """The ``top`` columns with the largest absolute contribution per record (``top`` is clamped to the columns).

    ``predicted``: the answer's values, to explain a multiclass model's predicted class (default:
    the class with the largest raw score, which is what its predict picks).
    """
    explained = contributions(model, records, predicted)
    order = strongest(explained, top)
    names = explained.columns
    multiclass = model.predictor.task == "multiclass"
    keys = model.predictor.class_keys
    result: list[RowExplanation] = []
    for row, (record, columns) in enumerate(zip(records, order.tolist(), strict=True)):
        values = explained.contributions[row]
        sent = record if isinstance(record, Mapping) else {}
        reasons = [Reason(names[c], sent.get(names[c]), float(values[c])) for c in columns]
        chosen = keys[int(explained.outputs[row])] if multiclass else None
        result.append(RowExplanation(reasons, float(explained.base[row]), chosen))
    return result


def _explained_outputs(
    predictor: Predictor, found: Contributions, predicted: Sequence[Any] | None, rows: int
) -> np.ndarray:
    if predictor.task != "multiclass" or found.values.shape[1] == 1:
        return np.zeros(rows, dtype=np.intp)
    index = {c: i for i, c in enumerate(predictor.classes)}
    if predicted is not None and all(v in index for v in predicted):
        return np.asarray([index[v] for v in predicted], dtype=np.intp)
    return np.asarray((found.values.sum(axis=2) + found.base).argmax(axis=1), dtype=np.intp)
