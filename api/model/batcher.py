"""Adaptive micro-batching: concurrent requests share one model call, in one worker thread.

Requests that arrive while the model is busy are coalesced into the next call (up to
``max_rows``); a lone request is never made to wait. Only models proven row-independent at
load (a row's answer does not depend on the rows beside it) are coalesced, so every answer is
identical to an unbatched call. A bounded queue sheds load with 503 instead of growing latency.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.errors import NotReadyError, OverloadedError, ServiceError
from api.model.inference import Prediction, merge_batches, new_prediction_ids, run_model, validate
from api.model.loaded import LoadedModel
from api.model.validation import ValidatedBatch

log = logging.getLogger(__name__)
_STOP = object()
_MONITORING_ERRORS = (ValueError, TypeError, KeyError, IndexError, ArithmeticError)


@dataclass
class _Job:
    records: Sequence[Any]
    batch: bool
    future: asyncio.Future[Prediction]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    validated: ValidatedBatch | None = None
    validation_seconds: float = 0.0
    outcome: Prediction | BaseException | None = None


def _settle(jobs: list[_Job]) -> None:
    """Runs on the event loop: hand each request its answer (unless it already gave up)."""
    for job in jobs:
        if job.future.done():  # the client went away or the request timed out
            continue
        if isinstance(job.outcome, BaseException):
            job.future.set_exception(job.outcome)
        else:
            job.future.set_result(job.outcome)  # type: ignore[arg-type]


class MicroBatcher:
    """One inference thread fed by a bounded queue of requests."""

    def __init__(
        self,
        current_model: Callable[[], LoadedModel],
        observe: Callable[[Prediction, list[Prediction]], None],
        *,
        max_rows: int,
        max_wait_seconds: float,
        queue_max_rows: int,
    ) -> None:
        self._current_model = current_model
        self._observe = observe
        self.max_rows = max_rows
        self.max_wait_seconds = max_wait_seconds
        self.queue_max_rows = queue_max_rows
        # SimpleQueue is implemented in C: a put costs far less than a Condition round trip.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._queued_rows = 0
        self._count_lock = threading.Lock()
        self._running = False
        self._busy_recently = False
        self._carry: _Job | None = None
        self._thread: threading.Thread | None = None
        # Answers go out before monitoring observes them; readers of monitoring state wait for
        # every batch answered so far to be observed (see wait_observed).
        self._observation = threading.Condition()
        self._answered = 0
        self._observed = 0

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def submit(self, records: Sequence[Any], *, batch: bool) -> Prediction:
        """Queue one request's records and wait for its prediction (or its error)."""
        if not self._running:
            raise NotReadyError("the inference worker is not running")
        rows = len(records)
        with self._count_lock:
            if self._queued_rows and self._queued_rows + rows > self.queue_max_rows:
                raise OverloadedError(
                    f"{self._queued_rows} rows are already waiting for inference (QUEUE_MAX_ROWS="
                    f"{self.queue_max_rows}); retry shortly"
                )
            self._queued_rows += rows
        loop = asyncio.get_running_loop()
        job = _Job(records, batch, loop.create_future(), loop)
        self._queue.put(job)
        return await job.future

    def _next(self, timeout: float | None) -> _Job | None:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        try:
            item = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _STOP:
            self._running = False
            return None
        queued: _Job = item
        return queued

    def _take(self) -> list[_Job] | None:
        first = self._next(None)
        if first is None:
            return None
        jobs, rows = [first], len(first.records)
        deadline = time.perf_counter() + (self.max_wait_seconds if self._busy_recently else 0.0)
        while rows < self.max_rows and self._running:
            job = self._next(max(0.0, deadline - time.perf_counter()))
            if job is None:
                break
            if rows + len(job.records) > self.max_rows:
                self._carry = job  # starts the next call
                break
            jobs.append(job)
            rows += len(job.records)
        with self._count_lock:
            self._queued_rows -= rows
        self._busy_recently = len(jobs) > 1 or self._carry is not None
        return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            calls: list[tuple[Prediction, list[Prediction]]] = []
            try:
                self._process(jobs, calls)
            except ServiceError as exc:
                for job in jobs:
                    job.outcome = job.outcome or exc
            except Exception as exc:
                log.exception("inference failed")
                for job in jobs:
                    job.outcome = job.outcome or exc
            by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
            for job in jobs:
                by_loop.setdefault(job.loop, []).append(job)
            with self._observation:
                self._answered += 1  # before any answer can reach a client
            for loop, settled in by_loop.items():
                loop.call_soon_threadsafe(_settle, settled)
            # Monitoring observes after the answers are on their way, never in front of them:
            # a batch it cannot take (e.g. a profile that no longer fits) must not stop inference.
            for combined, parts in calls:
                try:
                    self._observe(combined, parts)
                except _MONITORING_ERRORS:
                    log.exception("monitoring failed to observe a batch")
            with self._observation:
                self._observed += 1
                self._observation.notify_all()

    def wait_observed(self, timeout: float = 5.0) -> None:
        """Block until every prediction answered so far is in the drift window and the prediction log."""
        with self._observation:
            target = self._answered
            self._observation.wait_for(lambda: self._observed >= target, timeout)

    def _process(self, jobs: list[_Job], calls: list[tuple[Prediction, list[Prediction]]]) -> None:
        model = self._current_model()
        if len(jobs) > 1 and model.predictor.row_independent:
            merged = self._validate_together(model, jobs)
            if merged is not None:
                calls.append(self._call(model, jobs, merged))
                return
        valid: list[_Job] = []
        for job in jobs:
            started = time.perf_counter()
            try:
                job.validated = validate(model, job.records, batch=job.batch)
            except ServiceError as exc:
                job.outcome = exc
                continue
            job.validation_seconds = time.perf_counter() - started
            valid.append(job)
        if not valid:
            return
        batches = [job.validated for job in valid if job.validated is not None]
        if model.predictor.row_independent or len(valid) == 1:
            calls.append(self._call(model, valid, merge_batches(batches)))
        else:
            calls.extend(self._call(model, [job], batch) for job, batch in zip(valid, batches, strict=True))

    @staticmethod
    def _validate_together(model: LoadedModel, jobs: list[_Job]) -> ValidatedBatch | None:
        """All jobs' records validated in one column-wise pass (a row's checks never look at other rows).

        None when any record is refused: each request is then validated alone, so its error names
        its own rows and the others still get their answers.
        """
        started = time.perf_counter()
        records = [record for job in jobs for record in job.records]
        try:
            merged = validate(model, records, batch=True)
        except ServiceError:
            return None
        seconds_per_row = (time.perf_counter() - started) / len(records)
        start = 0
        for job in jobs:
            stop = start + len(job.records)
            ids = None if merged.ids is None else merged.ids[start:stop]
            job.validated = ValidatedBatch(columns={}, ids=ids, warnings=merged.warnings[start:stop], size=stop - start)
            job.validation_seconds = seconds_per_row * (stop - start)
            start = stop
        return merged

    def _call(
        self, model: LoadedModel, jobs: list[_Job], merged: ValidatedBatch
    ) -> tuple[Prediction, list[Prediction]]:
        timings: dict[str, float] = {}
        output = run_model(model, merged, timings)
        combined = Prediction(model, merged, output, new_prediction_ids(merged.size), timings)
        parts: list[Prediction] = []
        start = 0
        now = time.perf_counter()
        for job in jobs:
            assert job.validated is not None
            stop = start + job.validated.size
            part = combined.slice(start, stop, job.validated)
            part.timings = {"validation": job.validation_seconds, "queue_wait": now - job.enqueued}
            job.outcome = part
            parts.append(part)
            start = stop
        return combined, parts
