"""Fairness between callers: per-caller queues served by deficit round-robin, and per-caller quotas.

Each caller (an API key's name, a JWT subject, else the client address) has its own queue. Every
time the worker's turn comes to a caller, the caller earns its share of a call (``quantum`` rows
divided among the callers waiting) and may send its waiting requests while its credit covers their
rows; a caller whose queue empties loses its credit. So a caller of 1 000-row batches gets the
same rows per round as everyone else, and a caller of single rows waits for at most one model
call, never behind another caller's backlog.

Quotas bound what one caller may hold of the service: rows per second (a token bucket whose burst
is one second of rate, at least one full request) and rows in flight (queued or being computed).
Both refuse with 429 and Retry-After, before the body is read when the caller is already over.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from api.errors import QuotaExceededError


class Queued(Protocol):
    caller: str
    rows: int
    next_row: int  # rows before this one were already taken (a request served in slices)


J = TypeVar("J", bound=Queued)
Taken = tuple[J, int, int]  # a request and the rows [start, stop) of it that go into this call


class FairQueue(Generic[J]):
    """Per-caller FIFO queues, drained by deficit round-robin over rows (worker thread only)."""

    def __init__(self, quantum: int) -> None:
        self.quantum = max(1, quantum)
        self._queues: OrderedDict[str, deque[J]] = OrderedDict()  # rotation order: next caller first
        self._credit: dict[str, int] = {}
        self.rows = 0  # rows waiting, all callers

    def __len__(self) -> int:
        return len(self._queues)

    def push(self, job: J) -> None:
        queue = self._queues.get(job.caller)
        if queue is None:
            queue = self._queues[job.caller] = deque()
            self._credit[job.caller] = 0
        queue.append(job)
        self.rows += job.rows - job.next_row

    def drop(self, job: J) -> int:
        """Forget the rest of a request (refused after its first slice); returns the rows dropped."""
        queue = self._queues.get(job.caller)
        left = job.rows - job.next_row
        if queue is None or job not in queue:
            return 0
        queue.remove(job)
        job.next_row = job.rows
        self.rows -= left
        if not queue:
            del self._queues[job.caller]
            del self._credit[job.caller]
        return left

    def take(
        self, max_rows: int, *, slice_rows: int, split: Callable[[J], bool] = lambda _job: False
    ) -> list[Taken[J]]:
        """The next call's rows: round-robin by rows over callers, ``max_rows`` at most.

        A request ``split`` allows goes in slices of at most ``slice_rows`` (so nobody waits behind a
        long call); one it does not goes whole, once its caller's credit covers it. With one caller
        waiting, credit does not matter: requests are coalesced in FIFO order, the first one alone
        when it is larger than ``max_rows``.
        """
        taken: list[Taken[J]] = []
        rows = 0
        # Each waiting caller's share of one call: a round of the rotation fits in one call, so a
        # caller's next rows go into the very next call, whoever else is waiting.
        share = max(1, self.quantum // max(1, len(self._queues)))
        while self._queues and not taken:
            for caller in list(self._queues):
                queue = self._queues[caller]
                self._credit[caller] += share
                while queue:
                    job = queue[0]
                    start, size, splits = job.next_row, job.rows - job.next_row, split(job)
                    if splits:
                        size = min(size, slice_rows)
                    if len(self._queues) > 1 and size > self._credit[caller]:  # else nobody to be fair to
                        if not splits:
                            break
                        size = self._credit[caller]
                    if taken and rows + size > max_rows:
                        if not splits:
                            return taken  # first in the next call, its credit kept
                        size = max_rows - rows
                    if size <= 0:
                        break
                    job.next_row = start + size
                    if job.next_row == job.rows:
                        queue.popleft()
                    taken.append((job, start, start + size))
                    rows += size
                    self.rows -= size
                    self._credit[caller] = max(0, self._credit[caller] - size)
                    if rows >= max_rows or job.next_row < job.rows:
                        break  # full, or the rest of this request waits for a later call
                self._rotate_past(caller, queue)
                if rows >= max_rows:
                    return taken
        return taken

    def _rotate_past(self, caller: str, queue: deque[J]) -> None:
        """The caller had its turn: to the back of the rotation, or out of it (with its credit) when idle."""
        if caller not in self._queues:
            return
        if queue:
            self._queues.move_to_end(caller)
        else:
            del self._queues[caller]
            del self._credit[caller]


@dataclass
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


class CallerQuotas:
    """Rows per second and rows in flight, per caller; thread-safe (the event loop charges, the worker releases)."""

    def __init__(self, *, rows_per_second: float, max_rows_in_flight: int, burst_rows: int) -> None:
        self.rate = rows_per_second
        self.max_in_flight = max_rows_in_flight
        self.burst = float(max(burst_rows, rows_per_second))
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, caller: str, now: float) -> _Bucket:
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) > 10_000:  # forget callers whose buckets are full again
                self._buckets = {k: b for k, b in self._buckets.items() if b.in_flight or b.tokens < self.burst}
            bucket = self._buckets[caller] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        return bucket

    def check(self, caller: str) -> None:
        """Refuse at once a caller that is already over a quota (before its body is read)."""
        with self._lock:
            bucket = self._bucket(caller, time.monotonic())
            self._refuse_if_over(bucket, 1)

    def charge(self, caller: str, rows: int) -> None:
        """Take ``rows`` from the caller's quotas, or refuse with 429 and when to retry."""
        with self._lock:
            bucket = self._bucket(caller, time.monotonic())
            self._refuse_if_over(bucket, rows)
            bucket.tokens -= rows
            bucket.in_flight += rows

    def release(self, caller: str, rows: int) -> None:
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is not None:
                bucket.in_flight -= rows

    def _refuse_if_over(self, bucket: _Bucket, rows: int) -> None:
        if bucket.in_flight and bucket.in_flight + rows > self.max_in_flight:
            raise QuotaExceededError(
                f"this caller already has {bucket.in_flight} rows in flight (CALLER_MAX_ROWS_IN_FLIGHT="
                f"{self.max_in_flight}); retry when an answer has arrived",
                retry_after_seconds=1,
            )
        needed = min(rows, self.burst)
        if bucket.tokens < needed:
            wait = math.ceil((needed - bucket.tokens) / self.rate) if self.rate > 0 else 60
            raise QuotaExceededError(
                f"this caller sent more than CALLER_ROWS_PER_SECOND={self.rate:g} rows per second; "
                f"retry in {max(1, wait)} s",
                retry_after_seconds=max(1, wait),
            )
