"""The process heap around model changes: frozen out of the collector's view, given back when a model leaves.

``freeze()`` after startup takes what exists then (libraries, the model) out of the garbage
collector's view: every full collection would walk it again, and with pandas, scikit-learn and
scipy loaded that walk was the ~100 ms p99 tail at 64 connections. When a model is dropped,
``reclaim()`` collects what was created since (a few milliseconds: the frozen heap is not walked),
freezes what is still alive (the new model included, so later collections skip it too) and asks
the C allocator to return free pages to the OS: glibc keeps freed memory in per-thread arenas, and
loads run on worker threads. A dropped model is normally freed by reference counting at once, even
from the frozen heap; only if it is still alive after that (a reference cycle through the frozen
heap) is the whole heap thawed and collected, which holds the GIL for ~0.2 s on the real bundle.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)


def freeze() -> None:
    """Collect, then move everything alive out of the collector's generations."""
    gc.collect()
    gc.freeze()


def reclaim(dropped: Callable[[], object] | None = None) -> None:
    """Collect, freeze what lives, trim the C allocator; thaw the whole heap only if ``dropped`` survived.

    ``dropped`` is a weak reference to the model that left (None after a refused load).
    """
    started = time.perf_counter()
    collected = gc.collect()
    thawed = dropped is not None and dropped() is not None
    if thawed:
        gc.unfreeze()
        collected += gc.collect()
    gc.freeze()
    trimmed = _malloc_trim()
    log.debug(
        "heap reclaimed",
        extra={
            "objects_collected": collected,
            "thawed": thawed,
            "trimmed": trimmed,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not musl)


def _malloc_trim() -> bool:
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
