"""Adaptive micro-batching: concurrent requests share one model call, in one worker thread.

Requests that arrive while the model is busy are coalesced into the next call (up to
``max_rows``); a lone request is never made to wait. Only models proven row-independent at
load (a row's answer does not depend on the rows beside it) are coalesced, so every answer is
identical to an unbatched call. A bounded queue sheds load with 503 instead of growing latency.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.errors import NotReadyError, OverloadedError, ServiceError
from api.model.inference import Prediction, merge_batches, new_prediction_ids, run_model, validate
from api.model.loaded import LoadedModel
from api.model.validation import ValidatedBatch

log = logging.getLogger(__name__)


@dataclass
class _Job:
    records: Sequence[Any]
    batch: bool
    future: asyncio.Future[Prediction]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    validated: ValidatedBatch | None = None
    validation_seconds: float = 0.0


def _resolve(job: _Job, result: Prediction | None, error: BaseException | None) -> None:
    def settle() -> None:
        if job.future.done():  # the client went away or the request timed out
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)  # type: ignore[arg-type]

    job.loop.call_soon_threadsafe(settle)


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
        self._queue: deque[_Job] = deque()
        self._queued_rows = 0
        self._condition = threading.Condition()
        self._running = False
        self._busy_recently = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._running = False
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def submit(self, records: Sequence[Any], *, batch: bool) -> Prediction:
        """Queue one request's records and wait for its prediction (or its error)."""
        loop = asyncio.get_running_loop()
        job = _Job(records, batch, loop.create_future(), loop)
        with self._condition:
            if not self._running:
                raise NotReadyError("the inference worker is not running")
            if self._queued_rows + len(records) > self.queue_max_rows and self._queue:
                raise OverloadedError(
                    f"{self._queued_rows} rows are already waiting for inference (QUEUE_MAX_ROWS="
                    f"{self.queue_max_rows}); retry shortly"
                )
            self._queue.append(job)
            self._queued_rows += len(records)
            self._condition.notify()
        return await job.future

    def _take(self) -> list[_Job] | None:
        with self._condition:
            while self._running and not self._queue:
                self._condition.wait()
            if not self._running:
                return None
            jobs = [self._queue.popleft()]
            rows = len(jobs[0].records)
            deadline = time.perf_counter() + (self.max_wait_seconds if self._busy_recently else 0.0)
            while rows < self.max_rows:
                if not self._queue:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0 or not self._condition.wait(remaining) or not self._queue:
                        break
                if rows + len(self._queue[0].records) > self.max_rows:
                    break
                job = self._queue.popleft()
                jobs.append(job)
                rows += len(job.records)
            self._queued_rows -= rows
            self._busy_recently = len(jobs) > 1 or bool(self._queue)
            return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            try:
                self._process(jobs)
            except ServiceError as exc:
                for job in jobs:
                    _resolve(job, None, exc)
            except Exception as exc:
                log.exception("inference failed")
                for job in jobs:
                    _resolve(job, None, exc)

    def _process(self, jobs: list[_Job]) -> None:
        model = self._current_model()
        valid: list[_Job] = []
        for job in jobs:
            started = time.perf_counter()
            try:
                job.validated = validate(model, job.records, batch=job.batch)
            except ServiceError as exc:
                _resolve(job, None, exc)
                continue
            job.validation_seconds = time.perf_counter() - started
            valid.append(job)
        if not valid:
            return
        if model.predictor.row_independent or len(valid) == 1:
            self._call(model, valid)
        else:
            for job in valid:
                self._call(model, [job])

    def _call(self, model: LoadedModel, jobs: list[_Job]) -> None:
        merged = merge_batches([job.validated for job in jobs if job.validated is not None])
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
            parts.append(part)
            start = stop
        for job, part in zip(jobs, parts, strict=True):
            _resolve(job, part, None)
        self._observe(combined, parts)
