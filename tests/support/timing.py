"""Timing helpers for the few tests that measure cost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def untraced() -> Iterator[None]:
    """Time without coverage's tracer (`make test` runs under it): it multiplies every traced line's cost."""
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
