"""Sustained concurrent /predict traffic from threads, every answer kept for checking afterwards."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent and answered, which rows it carried, and what came back."""

    sent: float
    answered: float
    rows: tuple[int, ...]
    status: int | None  # None: no HTTP answer (connection refused or reset)
    version: str | None
    probabilities: tuple[float, ...]
    error: str | None = None


class LoadGenerator:
    """``threads`` clients posting single records and small batches in a loop until stopped."""

    def __init__(
        self,
        url: str,
        api_key: str,
        records: Sequence[dict[str, Any]],
        *,
        threads: int = 6,
        batch_sizes: Sequence[int] = (1, 1, 1, 4),
        positive: str = "1",
        pause: float = 0.0,
        timeout: float = 30.0,
    ) -> None:
        self.url, self.api_key, self.records = url, api_key, records
        self.threads, self.batch_sizes, self.positive = threads, tuple(batch_sizes), positive
        self.pause, self.timeout = pause, timeout
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._counter = itertools.count()

    def __enter__(self) -> LoadGenerator:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)

    def wait_for(self, answers: int, timeout: float = 60.0) -> None:
        """Block until at least ``answers`` answers arrived."""
        deadline = time.monotonic() + timeout
        while len(self.answers) < answers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.answers)} answers after {timeout}s")
            time.sleep(0.05)

    def _rows(self, worker: int) -> tuple[int, ...]:
        n = next(self._counter)
        size = self.batch_sizes[(n + worker) % len(self.batch_sizes)]
        start = (n * 7919) % len(self.records)
        return tuple((start + i) % len(self.records) for i in range(size))

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, headers={"X-API-Key": self.api_key}, timeout=self.timeout) as client:
            while not self._stop.is_set():
                rows = self._rows(worker)
                body: Any = self.records[rows[0]] if len(rows) == 1 else {"instances": [self.records[i] for i in rows]}
                sent = time.monotonic()
                try:
                    response = client.post("/predict", json=body)
                except httpx.TransportError as exc:
                    answer = Answer(sent, time.monotonic(), rows, None, None, (), f"{type(exc).__name__}: {exc}")
                    time.sleep(0.01)  # the server is gone or refusing: do not spin
                else:
                    answer = self._parse(sent, rows, response)
                with self._lock:
                    self.answers.append(answer)
                if self.pause:
                    time.sleep(self.pause)

    def _parse(self, sent: float, rows: tuple[int, ...], response: httpx.Response) -> Answer:
        answered = time.monotonic()
        if response.status_code != 200:
            return Answer(sent, answered, rows, response.status_code, None, (), response.text[:300])
        payload = response.json()
        predictions = payload.get("predictions", [payload])
        return Answer(
            sent,
            answered,
            rows,
            200,
            payload["model_version"],
            tuple(float(p["probabilities"][self.positive]) for p in predictions),
        )

    # --- what happened ------------------------------------------------------------------
    def failures(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    def by_version(self) -> Counter[str | None]:
        return Counter(a.version for a in self.answers if a.status == 200)


def mismatches(answers: Sequence[Answer], expected: dict[str, Sequence[float]]) -> list[str]:
    """Answers whose probabilities are not exactly the offline ones of the version they name."""
    wrong = []
    for answer in answers:
        if answer.status != 200:
            continue
        reference = expected.get(answer.version or "")
        if reference is None:
            wrong.append(f"unexpected version {answer.version}")
            continue
        want = tuple(reference[i] for i in answer.rows)
        if answer.probabilities != want:
            wrong.append(f"{answer.version} rows {answer.rows}: got {answer.probabilities}, offline {want}")
    return wrong
