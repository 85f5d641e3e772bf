"""Database failures become the store's 503 (the database's own text stays in the log)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

from api.errors import StoreError

log = logging.getLogger("api.store")


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Run a store operation; a database failure is raised as StoreError naming ``what``."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.warning("prediction store: %s failed", what, extra={"reason": str(exc).splitlines()[0][:300]})
        raise StoreError(f"the prediction store cannot {what} right now") from exc
