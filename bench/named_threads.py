"""`python -m bench.named_threads`: the service, each Python thread named for the OS (per-thread CPU in /proc).

Python 3.11 leaves every thread's kernel name "python"; giving each its ``threading`` name
("inference", "store-writer", "AnyIO worker thread", ...) lets bench.store_cost read each
thread's CPU time from /proc/<pid>/task/<tid>/schedstat. Nothing else differs from `python -m api`.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any

PR_SET_NAME = 15  # prctl(2): the calling thread's name, at most 15 bytes
_libc = ctypes.CDLL(None, use_errno=True)
_bootstrap_inner: Any = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]


def _named(self: threading.Thread) -> None:
    _libc.prctl(PR_SET_NAME, self.name.encode()[:15], 0, 0, 0)
    _bootstrap_inner(self)


threading.Thread._bootstrap_inner = _named  # type: ignore[attr-defined]

if __name__ == "__main__":
    from api.cli import main

    sys.exit(main())
