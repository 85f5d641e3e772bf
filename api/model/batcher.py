"""Adaptive micro-batching: concurrent requests share one model call, in one worker thread.

Requests that arrive while the model is busy are taken together (up to ``max_rows``); a lone
request is never made to wait. The worker hands what it took to ``inference.infer``, which
coalesces them only for models proven row-independent at load, so every answer is identical to
an unbatched call. A bounded queue sheds load with 503 instead of growing latency. This module
is only about threads and queues: what a request goes through is in inference.py.
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
from api.model.inference import Answer, ModelCall, infer
from api.model.loaded import LoadedModel

log = logging.getLogger(__name__)
_STOP = object()
_MONITORING_ERRORS = (ValueError, TypeError, KeyError, IndexError, ArithmeticError)


@dataclass
class _Job:
    """One request in the queue (an ``inference.Pending``), and where its answer goes."""

    records: Sequence[Any]
    future: asyncio.Future[Answer]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    outcome: Answer | BaseException | None = None


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

    async def submit(self, records: Sequence[Any]) -> Answer:
        """Queue one request's records and wait for its answer (or its error)."""
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
        job = _Job(records, loop.create_future(), loop)
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
            calls: list[ModelCall] = []
            try:
                calls = infer(self._current_model(), jobs)
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
        """Block until every answer given so far is in the drift window and the prediction log."""
        with self._observation:
            target = self._answered
            self._observation.wait_for(lambda: self._observed >= target, timeout)
