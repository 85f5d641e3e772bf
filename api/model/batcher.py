"""Adaptive micro-batching: concurrent requests share one model call, in one worker thread, fairly.

Requests that arrive while the model is busy are taken together (up to ``max_rows``); a lone
request is never made to wait. Each caller has its own queue and the worker serves them by deficit
round-robin over rows (fairness.py): one caller's 1 000-row batches cannot make another caller's
single rows wait behind them, and no caller starves. With one caller this is plain FIFO coalescing.
The worker hands what it took to ``inference.infer``, which coalesces them only for models proven
row-independent at load, so every answer is identical to an unbatched call. A bounded queue sheds
load with 503 instead of growing latency; per-caller quotas answer 429. This module is only about
threads and queues: what a request goes through is in inference.py.

Why ~320 lines: a request answered in slices (larger than BATCH_MAX_ROWS, several callers waiting)
is the batcher's own business — taking its rows, pinning one model version for all its slices,
putting the answer back together and refusing it as a whole — and splitting that out would spread
one worker loop's state over two modules. The scheduling policy itself is in fairness.py.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api.errors import NotReadyError, OverloadedError, ServiceError
from api.model.fairness import CallerQuotas, FairQueue
from api.model.inference import Answer, ModelCall, infer
from api.model.kinds import ModelOutput
from api.model.loaded import LoadedModel
from api.model.validation import ValidatedBatch

log = logging.getLogger(__name__)
_STOP = object()
SWITCH_INTERVAL_SECONDS = 0.001
_MONITORING_ERRORS = (ValueError, TypeError, KeyError, IndexError, ArithmeticError)


@dataclass
class _Job:
    """One request in the queue (an ``inference.Pending``), and where its answer goes."""

    records: Sequence[Any]
    future: asyncio.Future[Answer]
    loop: asyncio.AbstractEventLoop
    caller: str = ""
    rows: int = 0
    enqueued: float = field(default_factory=time.perf_counter)
    outcome: Answer | BaseException | None = None
    # A request served in slices: rows taken so far, the model every slice uses, the slices' answers.
    next_row: int = 0
    model: LoadedModel | None = None
    parts: list[Answer] = field(default_factory=list)


@dataclass
class _Slice:
    """Rows of a request from ``start`` on, answered as a request of their own (an ``inference.Pending``)."""

    records: Sequence[Any]
    job: _Job
    start: int
    enqueued: float
    outcome: Answer | BaseException | None = None


def _assembled(job: _Job) -> Answer:
    """A sliced request's answer: its slices' rows in order, as one unbatched call would give them."""
    parts, model = job.parts, job.model
    assert model is not None
    probabilities = [p.output.probabilities for p in parts]
    output = ModelOutput(
        [value for p in parts for value in p.output.values],
        None if any(p is None for p in probabilities) else np.concatenate(probabilities),  # type: ignore[arg-type]
    )
    ids = None if parts[0].batch.ids is None else [i for p in parts for i in p.batch.ids or ()]
    batch = ValidatedBatch(columns={}, ids=ids, warnings=[w for p in parts for w in p.batch.warnings], size=job.rows)
    answer = Answer(model, batch, output, [i for p in parts for i in p.prediction_ids])
    answer.timings = {
        "validation": sum(p.timings.get("validation", 0.0) for p in parts),
        "queue_wait": parts[0].timings.get("queue_wait", 0.0),
    }
    return answer


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
        observe: Callable[[Answer, list[Answer]], None],
        *,
        max_rows: int,
        max_wait_seconds: float,
        queue_max_rows: int,
        quotas: CallerQuotas | None = None,
        slice_rows: int = 256,
    ) -> None:
        self._current_model = current_model
        self._observe = observe
        self.max_rows = max_rows
        self.max_wait_seconds = max_wait_seconds
        self.queue_max_rows = queue_max_rows
        self.quotas = quotas
        self.slice_rows = slice_rows
        # SimpleQueue is implemented in C: a put costs far less than a Condition round trip.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._queued_rows = 0
        self._queued_by: dict[str, int] = {}  # rows each caller has waiting (admission when the queue is full)
        self._count_lock = threading.Lock()
        self._running = False
        self._busy_recently = False
        self._fair: FairQueue[_Job] = FairQueue(quantum=max_rows)  # the worker thread's own
        self._thread: threading.Thread | None = None
        # Answers go out before monitoring observes them; readers of monitoring state wait for
        # every batch answered so far to be observed (see wait_observed).
        self._observation = threading.Condition()
        self._answered = 0
        self._observed = 0

    def start(self) -> None:
        # The worker holds the GIL while it validates; by default a thread waits up to 5 ms for it, so
        # the event loop (a single row's whole HTTP path) would wait that long several times per request
        # beside a busy worker. 1 ms bounds that wait at little cost in switches.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_SECONDS))
        self._running = True
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check_quota(self, caller: str) -> None:
        """Refuse (429) a caller already over its quota, before its request body is even read."""
        if self.quotas is not None:
            self.quotas.check(caller)

    async def submit(self, records: Sequence[Any], caller: str = "") -> Answer:
        """Queue one request's records under its caller and wait for its answer (or its error)."""
        if not self._running:
            raise NotReadyError("the inference worker is not running")
        rows = len(records)
        with self._count_lock:
            # A full queue refuses a caller that already has rows waiting; a caller with nothing
            # waiting is let in (at most one request each), so greedy callers cannot lock others out.
            mine = self._queued_by.get(caller, 0)
            if self._queued_rows and self._queued_rows + rows > self.queue_max_rows and mine:
                raise OverloadedError(
                    f"{self._queued_rows} rows are already waiting for inference (QUEUE_MAX_ROWS="
                    f"{self.queue_max_rows}); retry shortly"
                )
            if self.quotas is not None:
                self.quotas.charge(caller, rows)
            self._queued_rows += rows
            self._queued_by[caller] = mine + rows
        loop = asyncio.get_running_loop()
        job = _Job(records, loop.create_future(), loop, caller, rows)
        self._queue.put(job)
        try:
            return await job.future
        finally:
            if self.quotas is not None:
                self.quotas.release(caller, rows)

    def _receive(self, timeout: float | None) -> bool:
        """Move what has arrived into the callers' queues; wait up to ``timeout`` for the first (None: forever)."""
        received = False
        while True:
            try:
                wait = not received and timeout != 0
                item = self._queue.get(timeout=timeout) if wait else self._queue.get_nowait()
            except queue.Empty:
                return received
            if item is _STOP:
                self._running = False
                return received
            self._fair.push(item)
            received = True

    def _take(self) -> list[tuple[_Job, int, int]] | None:
        """The rows of the next model call (None: stopped); waits for the first request to arrive."""
        self._receive(None if not self._fair.rows else 0)
        if not self._running:
            return None
        if self._busy_recently and self._fair.rows < self.max_rows:
            deadline = time.perf_counter() + self.max_wait_seconds
            while self._fair.rows < self.max_rows and (left := deadline - time.perf_counter()) > 0:
                if not self._receive(left):
                    break
        row_independent = self._current_model().predictor.row_independent
        # Only a model proven row-independent at load may answer a request in slices (exactly the same rows).
        taken = self._fair.take(
            self.max_rows,
            slice_rows=self.slice_rows,
            split=lambda job: job.model is not None or (row_independent and job.rows > self.max_rows),
        )
        self._unqueue([(job, stop - start) for job, start, stop in taken])
        self._busy_recently = len(taken) > 1 or self._fair.rows > 0
        return taken

    def _unqueue(self, taken: list[tuple[_Job, int]]) -> None:
        with self._count_lock:
            for job, rows in taken:
                self._queued_rows -= rows
                left = self._queued_by[job.caller] - rows
                if left:
                    self._queued_by[job.caller] = left
                else:
                    del self._queued_by[job.caller]

    def _units(self, taken: list[tuple[_Job, int, int]]) -> list[_Job | _Slice]:
        """What ``infer`` answers: whole requests, and slices of requests served in several calls."""
        units: list[_Job | _Slice] = []
        for job, start, stop in taken:
            if start == 0 and stop == job.rows:
                units.append(job)
                continue
            if start == 0:
                job.model = self._current_model()  # every slice of a request: one model version
            units.append(_Slice(job.records[start:stop], job, start, job.enqueued))
        return units

    def _refusal(self, job: _Job, error: BaseException) -> BaseException:
        """A refused slice refuses its request, with the error its whole records get (their own row numbers)."""
        self._unqueue([(job, self._fair.drop(job))])
        if job.model is not None and isinstance(error, ServiceError):
            try:
                job.model.validator.validate(job.records)
            except ServiceError as whole:
                return whole
        return error

    def _answer(self, units: list[_Job | _Slice]) -> list[ModelCall]:
        """Run ``infer`` per model (slices keep the model their request was validated with)."""
        calls: list[ModelCall] = []
        current = self._current_model()
        groups: dict[int, tuple[LoadedModel, list[_Job | _Slice]]] = {}
        for unit in units:
            model = unit.job.model if isinstance(unit, _Slice) and unit.job.model is not None else current
            groups.setdefault(id(model), (model, []))[1].append(unit)
        for model, members in groups.values():
            try:
                calls += infer(model, members)
            except ServiceError as exc:
                for unit in members:
                    unit.outcome = unit.outcome or exc
            except Exception as exc:
                log.exception("inference failed")
                for unit in members:
                    unit.outcome = unit.outcome or exc
        return calls

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            units = self._units(taken)
            calls = self._answer(units) if units else []
            settled: list[_Job] = []
            slices_done = False
            for unit in units:
                if isinstance(unit, _Job):
                    settled.append(unit)
                    continue
                job = unit.job
                slices_done = True
                if isinstance(unit.outcome, Answer) and not isinstance(job.outcome, BaseException):
                    job.parts.append(unit.outcome)
                    if job.next_row == job.rows and sum(p.batch.size for p in job.parts) == job.rows:
                        job.outcome = _assembled(job)
                        settled.append(job)
                elif job.outcome is None:
                    error = unit.outcome if isinstance(unit.outcome, BaseException) else RuntimeError("no answer")
                    job.outcome = self._refusal(job, error)
                    settled.append(job)
            if slices_done:
                # Monitoring counts requests, not slices: whole requests, and sliced ones once complete.
                answered = [j.outcome for j in settled if isinstance(j.outcome, Answer)]
                calls = [(combined, answered if i == 0 else []) for i, (combined, _) in enumerate(calls)]
            by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
            for job in settled:
                by_loop.setdefault(job.loop, []).append(job)
            with self._observation:
                self._answered += 1  # before any answer can reach a client
            for loop, jobs in by_loop.items():
                loop.call_soon_threadsafe(_settle, jobs)
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
        """Block until every answer given so far is in the drift window and the prediction log."""
        with self._observation:
            target = self._answered
            self._observation.wait_for(lambda: self._observed >= target, timeout)
