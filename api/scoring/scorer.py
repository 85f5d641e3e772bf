"""One chunk of a file → output rows and rejected rows, through the API's own validation and inference.

The validator and the predictor are the loaded model's (api/model/loader.py): the same checks,
the same proven compiled transform and predict call as POST /predict. A clean chunk is validated
column by column (``validate_columns``: no per-row records). A chunk that fails validation is not
dropped: the rows validation names are rejected (one line per bad field) and
the others are validated again and scored. Validation stops listing problems after
``MAX_REPORTED_PROBLEMS``; past that the chunk is halved until each part's problems are complete,
so a file full of bad rows costs a few extra passes, not one per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.errors import MAX_REPORTED_PROBLEMS, InvalidRecordsError, ScoringInputError
from api.model.inference import merge_batches
from api.model.loaded import LoadedModel
from api.model.validation import ValidatedBatch
from api.scoring.cells import column_values, records
from api.scoring.reasons import ReasonColumns

Columns = Mapping[str, Sequence[Any]]  # a chunk: each input column's cells, in row order


@dataclass(frozen=True, slots=True)
class Reject:
    """One refused field of one input row (``row`` counts data rows from 1, the header excluded)."""

    row: int
    field: str | None
    reason: str


@dataclass
class ScoredChunk:
    """A chunk's output columns (accepted rows, input order), its rejects and its unknown-category counts."""

    columns: dict[str, Any]
    rows: int
    rejects: list[Reject] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)


class ChunkScorer:
    """Scores chunks of one file with one loaded model; what depends only on the header is prepared once."""

    def __init__(
        self, model: LoadedModel, header: Sequence[str], *, keep_input: bool, explain: int | None = None
    ) -> None:
        self.model = model
        self.id_field = model.validator.id_field
        self.header = list(header)
        self.keep_input = keep_input
        wanted = [spec.name for spec in model.schema.columns] + ([self.id_field] if self.id_field else [])
        missing = [name for name in dict.fromkeys(wanted) if name not in self.header]
        if missing:
            raise ScoringInputError(
                f"the input has no column {', '.join(repr(m) for m in missing)} "
                f"(the model needs {', '.join(spec.name for spec in model.schema.columns)}"
                + (f"; the id column is {self.id_field!r}" if self.id_field else "")
                + ")"
            )
        # Refused here, before any row is read, when the model cannot explain itself.
        self.reasons = ReasonColumns(model, explain) if explain else None
        self.output_names = self._output_names()

    def _output_names(self) -> list[str]:
        predictor = self.model.predictor
        self.probability_names = (
            [f"probability_{key}" for key in predictor.class_keys] if predictor.task != "regression" else []
        )
        scores = ["prediction", *self.probability_names, "model_version"]
        scores += self.reasons.names if self.reasons is not None else []
        front = self.header if self.keep_input else ([self.id_field] if self.id_field else [])
        clash = sorted(set(front) & set(scores))
        if clash:
            raise ScoringInputError(
                f"input column {clash[0]!r} has the name of an output column: rename it, or score without --keep-input"
            )
        return front + scores

    def score(self, chunk: Columns, first_row: int) -> ScoredChunk:
        """Score one chunk whose first row is data row ``first_row`` (1-based) of the file."""
        size = len(chunk[self.header[0]]) if self.header else 0
        converted = {spec.name: column_values(spec, chunk[spec.name]) for spec in self.model.schema.columns}
        if self.id_field and self.id_field not in converted:
            converted[self.id_field] = list(chunk[self.id_field])
        rejects: list[Reject] = []
        try:
            parts = [(list(range(size)), self.model.validator.validate_columns(converted, size))]
        except InvalidRecordsError:
            parts = self._validated(records(converted, size), list(range(size)), first_row, rejects)
        kept = [row for rows, _ in parts for row in rows]
        rejects.sort(key=lambda r: r.row)
        result = ScoredChunk(columns={name: [] for name in self.output_names}, rows=len(kept), rejects=rejects)
        if not kept:
            return result
        batch = merge_batches([batch for _, batch in parts])
        output = self.model.predictor.run(batch.columns, batch.size)
        out = result.columns
        if self.keep_input:
            everything = len(kept) == size
            for name in self.header:
                out[name] = chunk[name] if everything else [chunk[name][i] for i in kept]
        elif self.id_field:
            out[self.id_field] = batch.ids
        out["prediction"] = output.values
        probabilities = output.probabilities
        for index, name in enumerate(self.probability_names):
            out[name] = [None] * len(kept) if probabilities is None else probabilities[:, index]
        out["model_version"] = [self.model.version] * len(kept)
        if self.reasons is not None:
            out.update(self.reasons.columns(batch, output.values, chunk, kept))
        result.unknown = dict(batch.unknown)
        return result

    def _validated(
        self, chunk: list[dict[str, Any]], rows: list[int], first_row: int, rejects: list[Reject]
    ) -> list[tuple[list[int], ValidatedBatch]]:
        """The chunk's valid rows as validated batches (with their positions); the others into ``rejects``."""
        if not chunk:
            return []
        try:
            return [(rows, self.model.validator.validate(chunk))]
        except InvalidRecordsError as exc:
            problems = exc.problems
        if len(problems) >= MAX_REPORTED_PROBLEMS and len(chunk) > 1:
            half = len(chunk) // 2  # the list may be incomplete: find every problem in smaller parts
            return self._validated(chunk[:half], rows[:half], first_row, rejects) + self._validated(
                chunk[half:], rows[half:], first_row, rejects
            )
        bad = {p.row for p in problems}
        rejects.extend(Reject(first_row + rows[p.row], p.field, p.message) for p in problems)
        keep = [i for i in range(len(chunk)) if i not in bad]
        return self._validated([chunk[i] for i in keep], [rows[i] for i in keep], first_row, rejects)
