"""The background writer: answered predictions reach the database in batches, off the request path.

``submit`` only appends to an in-memory queue (the request thread never waits for the database).
A thread writes whatever is queued at least every ``flush_seconds``; when the database is
unreachable the rows stay queued (up to ``max_rows``: beyond it the oldest are dropped and counted),
the thread retries with a growing pause and catches up when the database returns. ``stop`` writes
everything still queued (bounded by a deadline) before the process exits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("api.store")
MAX_BATCH_ROWS = 5000
MAX_RETRY_SECONDS = 5.0


class WriterMetrics(Protocol):
    """What the writer reports (ServiceMetrics implements it)."""

    def set_store_backlog(self, rows: int) -> None: ...

    def observe_store_written(self, rows: int, seconds: float) -> None: ...

    def observe_store_failure(self) -> None: ...

    def observe_store_dropped(self, rows: int) -> None: ...


Expand = Callable[[Sequence[Any]], list[Any]]  # queued items -> their rows (encrypts: runs on the writer thread)
Write = Callable[[Sequence[Any]], None]  # rows -> the database, in one transaction


class BatchWriter:
    """Queue of answered predictions drained by one thread; see the module docstring for the guarantees."""

    def __init__(
        self, expand: Expand, write: Write, metrics: WriterMetrics, *, flush_seconds: float, max_rows: int
    ) -> None:
        self._expand, self._write, self._metrics = expand, write, metrics
        self._flush_seconds, self._max_rows = flush_seconds, max_rows
        self._queue: deque[tuple[int, Any]] = deque()  # (rows, item), not yet expanded
        self._failed: deque[Any] = deque()  # expanded rows a failed write left behind
        self._queued_rows = 0
        self._submitted = 0  # items ever submitted; _done: items written or dropped
        self._done = 0
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.dropped = 0
        self.outage_since: float | None = None
        self._housekeeping: list[tuple[float, Callable[[], None]]] = []

    # --- the request side ----------------------------------------------------------------
    def submit(self, item: Any, rows: int) -> None:
        """Queue one answered request (``rows`` rows); never blocks on the database."""
        with self._lock:
            self._queue.append((rows, item))
            self._queued_rows += rows
            self._submitted += 1
            if self._queued_rows + len(self._failed) > self._max_rows:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        dropped = 0
        while self._failed and self._queued_rows + len(self._failed) > self._max_rows:
            self._failed.popleft()
            dropped += 1
        while len(self._queue) > 1 and self._queued_rows + len(self._failed) > self._max_rows:
            rows, _ = self._queue.popleft()
            self._queued_rows -= rows
            self._done += 1
            dropped += rows
        if dropped:
            self.dropped += dropped
            self._metrics.observe_store_dropped(dropped)
            log.error("prediction store buffer full: dropped the oldest rows", extra={"rows": dropped})

    @property
    def backlog(self) -> int:
        with self._lock:
            return self._queued_rows + len(self._failed)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted before this call is written; False on timeout (database down)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._submitted
            self._lock.notify_all()
            while self._done < target or self._failed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    # --- the thread ----------------------------------------------------------------------
    def every(self, seconds: float, job: Callable[[], None]) -> None:
        """Run ``job`` on the writer thread about every ``seconds`` (retention, drift counts)."""
        self._housekeeping.append((seconds, job))

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> int:
        """Write what is queued (up to ``timeout`` seconds), stop the thread; returns the rows left unwritten."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        left = self.backlog
        if left:
            log.error("prediction store: rows not written at shutdown (database unreachable)", extra={"rows": left})
        return left

    def _run(self) -> None:
        pause = self._flush_seconds
        due = [time.monotonic() + seconds for seconds, _ in self._housekeeping]
        while True:
            with self._lock:
                if not self._stopping and not self._failed:
                    self._lock.wait(self._flush_seconds)
                stopping = self._stopping
            written = self._drain()
            if written is False:
                time.sleep(pause)
                pause = min(pause * 2, MAX_RETRY_SECONDS)
                continue
            pause = self._flush_seconds
            if stopping and not self.backlog:
                return
            now = time.monotonic()
            for index, (seconds, job) in enumerate(self._housekeeping):
                if now >= due[index]:
                    due[index] = now + seconds
                    try:
                        job()
                    except (SQLAlchemyError, OSError):  # a database hiccup never stops the writer; it says why
                        log.exception("prediction store housekeeping failed")

    def _drain(self) -> bool | None:
        """Write the queued rows; True when written, None when nothing to do, False when the write failed."""
        with self._lock:
            if not self._queue and not self._failed:
                return None
            items = list(self._queue)
            self._queue.clear()
            self._queued_rows = 0
            rows = list(self._failed)
            self._failed.clear()
        if items:
            rows.extend(self._expand([item for _, item in items]))  # one call: per-batch work is done once
        self._metrics.set_store_backlog(len(rows))
        started = time.perf_counter()
        written = 0
        try:
            while written < len(rows):
                chunk = rows[written : written + MAX_BATCH_ROWS]
                self._write(chunk)
                written += len(chunk)
        except Exception as exc:  # noqa: BLE001 - any database failure: keep the rows and retry (the thread must live)
            with self._lock:
                self._failed.extendleft(reversed(rows[written:]))
                self._done += len(items)
                self._drop_oldest()
                self._lock.notify_all()
            self._metrics.set_store_backlog(self.backlog)
            self._metrics.observe_store_failure()
            if self.outage_since is None:
                self.outage_since = time.monotonic()
                log.error("prediction store unreachable: buffering rows and retrying", extra={"reason": _reason(exc)})
            return False
        self._metrics.observe_store_written(len(rows), time.perf_counter() - started)
        with self._lock:
            self._done += len(items)
            self._lock.notify_all()
        self._metrics.set_store_backlog(self.backlog)
        if self.outage_since is not None:
            log.warning(
                "prediction store reachable again: caught up",
                extra={"outage_seconds": round(time.monotonic() - self.outage_since, 1)},
            )
            self.outage_since = None
        return True


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
