"""`python -m bench.named_threads`: the service, each Python thread named for the OS (per-thread CPU in /proc).

Python 3.11 leaves every thread's kernel name "python"; giving each its ``threading`` name
("inference", "store-writer", "AnyIO worker thread", ...) lets bench.store_cost read each
thread's CPU time from /proc/<pid>/task/<tid>/schedstat. With BENCH_GC_FILE set, the time spent
in the garbage collector (whichever thread triggered it) is written there every 0.2 s as JSON.
Nothing else differs from `python -m api`.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

PR_SET_NAME = 15  # prctl(2): the calling thread's name, at most 15 bytes
_libc = ctypes.CDLL(None, use_errno=True)
_bootstrap_inner: Any = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]


def _named(self: threading.Thread) -> None:
    _libc.prctl(PR_SET_NAME, self.name.encode()[:15], 0, 0, 0)
    _bootstrap_inner(self)


threading.Thread._bootstrap_inner = _named  # type: ignore[attr-defined]

_gc_seconds = [0.0, 0.0, 0.0]  # per generation
_gc_collections = [0, 0, 0]
_gc_started = [0.0]


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.thread_time()
    else:
        _gc_seconds[info["generation"]] += time.thread_time() - _gc_started[0]
        _gc_collections[info["generation"]] += 1


def _gc_reporter(path: Path) -> None:
    draft = path.with_name(path.name + ".draft")
    while True:
        draft.write_text(json.dumps({"seconds": _gc_seconds, "collections": _gc_collections}))
        draft.replace(path)  # readers never see a half-written file
        time.sleep(0.2)


if os.environ.get("BENCH_GC_FILE"):
    gc.callbacks.append(_gc_timer)
    path = Path(os.environ["BENCH_GC_FILE"])
    reporter = threading.Thread(target=_gc_reporter, args=(path,), name="bench-gc-report", daemon=True)
    reporter.start()

if __name__ == "__main__":
    from api.cli import main

    sys.exit(main())
