"""Timing helpers for the few tests that measure cost."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


@contextmanager
def undisturbed() -> Iterator[None]:
    """Time without coverage's tracer and without the garbage collector.

    `make test` runs under coverage, which multiplies every traced line's cost; and late in a full
    run the heap holds what a thousand earlier tests left, so a collection triggered inside the
    timed loop charges their garbage to the code under measurement.
    """
    with ExitStack() as stack:
        stack.enter_context(_without_coverage())
        gc.collect()
        if gc.isenabled():
            gc.disable()
            stack.callback(gc.enable)
        yield


@contextmanager
def _without_coverage() -> Iterator[None]:
    try:
        import coverage
    except ImportError:
        yield
        return
    current = coverage.Coverage.current()
    if current is None:
        yield
        return
    current.stop()
    try:
        yield
    finally:
        current.start()
