"""The request path without HTTP: records in, answers out — validate, transform, predict.

``infer`` serves the requests the micro-batcher hands it, coalescing them into one model call when
the model was proven row-independent; ``answer_records`` is the same path for one set of records
(offline use: profiles, benchmarks). Neither knows about HTTP: the route renders an ``Answer``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from api.errors import ServiceError
from api.model.kinds import ModelOutput
from api.model.loaded import LoadedModel
from api.model.validation import ValidatedBatch

RANDOM_ID_BYTES = 10  # a prediction id's random part: 80 bits (the other 48 are the clock)


@dataclass
class Answer:
    """What a batch of records got: the model's output per row, with its ids, warnings and timings.

    One model call gives one Answer; each request it served gets its own ``part`` of it.
    """

    model: LoadedModel
    batch: ValidatedBatch
    output: ModelOutput
    prediction_ids: list[str]  # what clients send back with the true label (POST /feedback)
    timings: dict[str, float] = field(default_factory=dict)

    def part(self, start: int, stop: int, batch: ValidatedBatch) -> Answer:
        """The rows [start, stop) of a coalesced call: one request's answer."""
        output = ModelOutput(
            self.output.values[start:stop],
            None if self.output.probabilities is None else self.output.probabilities[start:stop],
        )
        return Answer(self.model, batch, output, self.prediction_ids[start:stop])


class Pending(Protocol):
    """A request waiting for its answer (the batcher's job): its records, when it was queued, its outcome."""

    records: Sequence[Any]
    enqueued: float
    outcome: Answer | BaseException | None


# One model call: its Answer over every row, and the Answer of each request it served (for monitoring).
ModelCall = tuple[Answer, list[Answer]]
_Valid = tuple[Pending, ValidatedBatch, float]  # a request, its validated rows, seconds spent validating them


def infer(model: LoadedModel, requests: Sequence[Pending]) -> list[ModelCall]:
    """Answer each request (its ``outcome``: an Answer, or the error refusing its records); return the model calls."""
    if len(requests) > 1 and model.predictor.row_independent:
        coalesced = _validate_together(model, requests)
        if coalesced is not None:
            return [_call(model, *coalesced)]
    valid: list[_Valid] = []
    for request in requests:
        started = time.perf_counter()
        try:
            batch = model.validator.validate(request.records)
        except ServiceError as exc:
            request.outcome = exc
            continue
        valid.append((request, batch, time.perf_counter() - started))
    if not valid:
        return []
    if model.predictor.row_independent or len(valid) == 1:
        return [_call(model, valid, merge_batches([batch for _, batch, _ in valid]))]
    return [_call(model, [one], one[1]) for one in valid]


def answer_records(model: LoadedModel, records: Sequence[Any]) -> Answer:
    """Validate, transform and predict one set of records in the calling thread."""
    started = time.perf_counter()
    validated = model.validator.validate(records)
    timings = {"validation": time.perf_counter() - started}
    output = _run_model(model, validated, timings)
    return Answer(model, validated, output, new_prediction_ids(validated.size), timings)


def _validate_together(model: LoadedModel, requests: Sequence[Pending]) -> tuple[list[_Valid], ValidatedBatch] | None:
    """All requests' records validated in one column-wise pass (a row's checks never look at other rows).

    None when any record is refused: each request is then validated alone, so its error names
    its own rows and the others still get their answers.
    """
    started = time.perf_counter()
    records = [record for request in requests for record in request.records]
    try:
        merged = model.validator.validate(records)
    except ServiceError:
        return None
    seconds_per_row = (time.perf_counter() - started) / len(records)
    valid: list[_Valid] = []
    start = 0
    for request in requests:
        stop = start + len(request.records)
        ids = None if merged.ids is None else merged.ids[start:stop]
        part = ValidatedBatch(columns={}, ids=ids, warnings=merged.warnings[start:stop], size=stop - start)
        valid.append((request, part, seconds_per_row * (stop - start)))
        start = stop
    return valid, merged


def _call(model: LoadedModel, valid: list[_Valid], merged: ValidatedBatch) -> ModelCall:
    """One model call over the merged rows, split into each request's answer."""
    timings: dict[str, float] = {}
    output = _run_model(model, merged, timings)
    combined = Answer(model, merged, output, new_prediction_ids(merged.size), timings)
    parts: list[Answer] = []
    start = 0
    now = time.perf_counter()
    for request, batch, validation_seconds in valid:
        stop = start + batch.size
        part = combined.part(start, stop, batch)
        part.timings = {"validation": validation_seconds, "queue_wait": now - request.enqueued}
        request.outcome = part
        parts.append(part)
        start = stop
    return combined, parts


def _run_model(model: LoadedModel, validated: ValidatedBatch, timings: dict[str, float]) -> ModelOutput:
    """Preprocess and predict one validated batch, timing each phase."""
    predictor = model.predictor
    started = time.perf_counter()
    features = predictor.transform(validated.columns)
    transformed = time.perf_counter()
    output = predictor.predict(features, validated.size)
    timings["preprocessing"] = transformed - started
    timings["prediction"] = time.perf_counter() - transformed
    return output


def new_prediction_ids(count: int) -> list[str]:
    """Unguessable ids a client sends back with the true label (POST /feedback); one syscall per batch.

    32 hex digits laid out as a UUIDv7 is: the millisecond clock (12 digits), then 80 random bits. The
    prediction store indexes rows by this id; ids that arrive in ascending order add to the end of that
    index, where fully random ones rewrite a random page of it per row (once the index outgrows the
    cache, that was most of what storing a prediction cost SQLite, and PostgreSQL's B-tree the same).
    """
    clock = f"{time.time_ns() // 1_000_000:012x}"
    digits = os.urandom(RANDOM_ID_BYTES * count).hex()
    step = 2 * RANDOM_ID_BYTES
    return [clock + digits[i : i + step] for i in range(0, step * count, step)]


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
