"""The request path without HTTP: records in, timed predictions out."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api.model.loaded import LoadedModel
from api.model.predictor import ModelOutput
from api.model.validation import ValidatedBatch


@dataclass
class Prediction:
    """The answer for a batch of records, with what monitoring needs to observe it."""

    model: LoadedModel
    batch: ValidatedBatch
    output: ModelOutput
    prediction_ids: list[str]
    timings: dict[str, float] = field(default_factory=dict)

    def slice(self, start: int, stop: int, batch: ValidatedBatch) -> Prediction:
        """The part of a coalesced call that answers one request."""
        output = ModelOutput(
            self.output.predictions[start:stop],
            None if self.output.probabilities is None else self.output.probabilities[start:stop],
        )
        return Prediction(self.model, batch, output, self.prediction_ids[start:stop])

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready object per record, in request order."""
        keys = self.model.predictor.class_keys
        probabilities = self.output.probabilities.tolist() if self.output.probabilities is not None else None
        ids = self.batch.ids
        rows: list[dict[str, Any]] = []
        for index, value in enumerate(self.output.predictions):
            row: dict[str, Any] = {"prediction": value}
            if probabilities is not None:
                row["probabilities"] = dict(zip(keys, probabilities[index], strict=True))
            if ids is not None:
                row["id"] = ids[index]
            row["prediction_id"] = self.prediction_ids[index]
            if self.batch.warnings[index]:
                row["warnings"] = self.batch.warnings[index]
            rows.append(row)
        return rows

    def body(self, *, batch: bool) -> dict[str, Any]:
        rows = self.rows()
        if batch:
            return {"predictions": rows, "model_version": self.model.version}
        return {**rows[0], "model_version": self.model.version}


def validate(model: LoadedModel, records: Sequence[Any], *, batch: bool) -> ValidatedBatch:
    """Check records against the model's schema (raises InvalidInputError)."""
    return model.validator.validate(records, batch=batch)


def run_model(model: LoadedModel, validated: ValidatedBatch, timings: dict[str, float]) -> ModelOutput:
    """Preprocess and predict one validated batch, timing each phase."""
    started = time.perf_counter()
    features = model.predictor.transform(validated.columns)
    transformed = time.perf_counter()
    output = model.predictor.predict(features, validated.size)
    timings["preprocessing"] = transformed - started
    timings["prediction"] = time.perf_counter() - transformed
    return output


def predict_records(model: LoadedModel, records: Sequence[Any], *, batch: bool) -> Prediction:
    """Validate, preprocess and predict, in one call (the unbatched path)."""
    started = time.perf_counter()
    validated = validate(model, records, batch=batch)
    timings = {"validation": time.perf_counter() - started}
    output = run_model(model, validated, timings)
    return Prediction(model, validated, output, new_prediction_ids(validated.size), timings)


def new_prediction_ids(count: int) -> list[str]:
    """Unguessable ids a client sends back with the true label (POST /feedback); one syscall per batch."""
    digits = os.urandom(16 * count).hex()
    return [digits[i : i + 32] for i in range(0, 32 * count, 32)]


def merge_batches(batches: list[ValidatedBatch]) -> ValidatedBatch:
    """Several requests' validated rows as one batch, in order."""
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    columns = {name: np.concatenate([b.columns[name] for b in batches]) for name in first.columns}
    ids = None if first.ids is None else [i for b in batches for i in (b.ids or [None] * b.size)]
    counts: dict[str, dict[str, int]] = {"unknown": {}, "missing": {}}
    for b in batches:
        for kind, source in (("unknown", b.unknown), ("missing", b.missing)):
            for name, n in source.items():
                counts[kind][name] = counts[kind].get(name, 0) + n
    return ValidatedBatch(
        columns=columns,
        ids=ids,
        warnings=[w for b in batches for w in b.warnings],
        size=sum(b.size for b in batches),
        unknown=counts["unknown"],
        missing=counts["missing"],
    )
