"""What the loader proves about a bundle before serving it; each proof returns a verdict, nothing is mutated.

The served ``Predictor`` is built once from these verdicts: a faster path (compiled preprocessing, a
kind's shortcut) is used only when it answers bit for bit what the library answers, and requests are
coalesced only when a row's answer does not depend on the rows beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.errors import ServiceError
from api.model.columns import ColumnBatch
from api.model.compiled import CompiledMismatch, UnsupportedPreprocessor, compile_preprocessor, verify_compiled
from api.model.kinds import ModelOutput, Predict
from api.model.predictor import Transform, compiled_or_library
from api.model.schema import InputSchema
from api.model.validation import RecordValidator

log = logging.getLogger(__name__)

# Errors a fitted estimator raises on input it cannot handle (e.g. NaN where nothing imputes).
INFERENCE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)

Run = Callable[[ColumnBatch, int], ModelOutput]  # validated columns, rows -> output


@dataclass(frozen=True)
class TransformVerdict:
    """The transform to serve and why: the compiled one only when it reproduced the library exactly."""

    transform: Transform
    path: str  # "compiled" or "library"
    reason: str


def nullable_columns(run: Run, schema: InputSchema, example: dict[str, Any]) -> set[str]:
    """Which columns accept null, found by asking the fitted artifacts rather than guessing."""
    open_validator = RecordValidator(
        schema.with_nullability({c.name for c in schema.columns}), id_field=None, forbid_extra=False
    )

    def accepts(names: list[str]) -> bool:
        batch = open_validator.validate([{**example, name: None} for name in names])
        try:
            output = run(batch.columns, batch.size)
        except INFERENCE_ERRORS:
            return False
        values = output.probabilities if output.probabilities is not None else np.asarray(output.values, dtype=float)
        return bool(np.isfinite(values).all())

    names = [c.name for c in schema.columns]
    if not names or accepts(names):
        return set(names)
    return {name for name in names if accepts([name])}


def sample_rows(
    example: dict[str, Any], training_rows: list[dict[str, Any]], validator: RecordValidator
) -> list[dict[str, Any]]:
    """Valid rows to prove paths on: the example, training rows, and the example varied one field at a time."""
    candidates = [example, *training_rows, *_variants(example, validator.schema)]
    return [row for row in candidates if _is_valid(validator, row)]


def compiled_transform(
    preprocessor: Any | None,
    schema: InputSchema,
    library: Transform,
    samples: list[dict[str, Any]],
    *,
    enabled: bool,
) -> TransformVerdict:
    """The compiled transform when it reproduces the library exactly on the samples and edge rows."""
    if not enabled:
        return TransformVerdict(library, "library", "disabled by COMPILED_PREPROCESSING=false")
    if preprocessor is None:
        return TransformVerdict(library, "library", "no preprocessor")
    try:
        fast = compile_preprocessor(preprocessor, schema.frame_order)
        sample = RecordValidator(schema, id_field=None, forbid_extra=False).validate(samples)
        verify_compiled(fast, library, sample.columns)
    except (UnsupportedPreprocessor, CompiledMismatch, *INFERENCE_ERRORS) as exc:
        # Any doubt about the compiled path means the library path: never trade correctness for speed.
        log.warning("compiled preprocessing not used", extra={"reason": str(exc)})
        return TransformVerdict(library, "library", f"library transform: {exc}")
    return TransformVerdict(
        compiled_or_library(fast.transform, library),
        "compiled",
        "compiled transform verified bit-identical to the library on sample and edge rows",
    )


def same_answers(
    candidate: Predict | None,
    reference: Predict,
    transform: Transform,
    validator: RecordValidator,
    samples: list[dict[str, Any]],
) -> bool:
    """Whether a kind's shortcut answers every sample (as one batch, and the first 16 alone) as the library does."""
    if candidate is None or not samples:
        return False
    batches = [validator.validate(samples), *(validator.validate([s]) for s in samples[:16])]
    for batch in batches:
        features = transform(batch.columns)
        if not outputs_equal(candidate(features, batch.size), reference(features, batch.size)):
            return False
    return True


# BLAS kernels switch with the batch size: a linear model can agree with itself on 10 rows and
# differ in the last bit from 16 rows on, so the proof uses a batch larger than BATCH_MAX_ROWS' default.
PROOF_ROWS = 128


def row_independent(run: Run, validator: RecordValidator, samples: list[dict[str, Any]]) -> bool:
    """True when every row's answer is bit-identical alone and inside a batch: only then are requests merged."""
    samples = [s for s in _proof_rows(samples, validator.schema) if _is_valid(validator, s)]
    if len(samples) < 2:
        return False
    together = validator.validate(samples)
    batch_output = run(together.columns, together.size)
    for index, record in enumerate(samples):
        alone = validator.validate([record])
        row = ModelOutput(
            batch_output.values[index : index + 1],
            None if batch_output.probabilities is None else batch_output.probabilities[index : index + 1],
        )
        if not outputs_equal(run(alone.columns, 1), row):
            return False
    return True


def outputs_equal(a: ModelOutput, b: ModelOutput) -> bool:
    """Bit-identical probabilities and the same values, type included."""
    same_probabilities = (a.probabilities is None and b.probabilities is None) or (
        a.probabilities is not None
        and b.probabilities is not None
        and a.probabilities.tobytes() == b.probabilities.tobytes()
    )
    return same_probabilities and [repr(p) for p in a.values] == [repr(p) for p in b.values]


def _proof_rows(samples: list[dict[str, Any]], schema: InputSchema) -> list[dict[str, Any]]:
    """PROOF_ROWS distinct rows: the samples, then copies with numbers scaled and categories rotated."""
    rows = list(samples)
    for i in range(len(rows), PROOF_ROWS if len(samples) >= 2 else 0):
        row = dict(samples[i % len(samples)])
        for position, column in enumerate(schema.columns):
            value = row.get(column.name)
            if column.kind == "categorical" and column.categories:
                row[column.name] = column.categories[(i + position) % len(column.categories)]
            elif isinstance(value, int | float) and not isinstance(value, bool):
                row[column.name] = value * (1.0 + (i % 17) / 16.0) + i % 5
        rows.append(row)
    return rows


def _variants(example: dict[str, Any], schema: InputSchema) -> list[dict[str, Any]]:
    """Rows that differ from the example one field at a time, to exercise the model across its inputs."""
    rows: list[dict[str, Any]] = []
    for column in schema.columns:
        if column.kind == "categorical":
            rows.extend({**example, column.name: c} for c in column.categories[:4] if c == c)
        elif isinstance(example.get(column.name), int | float):
            rows.extend({**example, column.name: example[column.name] * f} for f in (0.5, 2.0))
    return rows


def _is_valid(validator: RecordValidator, record: Any) -> bool:
    try:
        validator.validate([record])
    except ServiceError:
        return False
    return True
