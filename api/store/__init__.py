"""The prediction store: engines, encryption, migrations, the background writer (see README, "Prediction store")."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from api.config import Settings
from api.errors import StoreError
from api.store.engine import database_url, describe, open_engine
from api.store.keys import load_keyring
from api.store.store import Answered, PredictionStore
from api.store.writer import WriterMetrics

__all__ = ["Answered", "PredictionStore", "open_store"]
log = logging.getLogger("api.store")


def open_store(settings: Settings, metrics: WriterMetrics) -> PredictionStore:
    """Connect, apply the migrations, load the keys; blocking (raises StoreError/StoreKeyError).

    An unreachable PostgreSQL does not stop the start (a fleet must not crash-loop through a database
    outage): the service answers, buffers, and the writer migrates and catches up once it connects.
    The embedded SQLite file failing is a configuration error (DATA_DIR): the start fails.
    """
    url = database_url(settings.database_url.get_secret_value() if settings.database_url else None, settings.data_dir)
    keys = load_keyring(
        settings.store_keys.get_secret_value() if settings.store_keys else None,
        settings.store_keys_file,
        settings.data_dir,
    )
    engine = open_engine(url)
    store = PredictionStore(
        engine, keys, metrics, flush_seconds=settings.store_flush_ms / 1000, buffer_rows=settings.store_buffer_rows
    )
    try:
        store.ensure_schema()
    except SQLAlchemyError as exc:
        if engine.dialect.name == "sqlite":
            engine.dispose()
            raise StoreError(f"the prediction store at {describe(url)} cannot be opened: {type(exc).__name__}") from exc
        log.error(
            "prediction store unreachable at start: serving anyway, buffering rows, retrying",
            extra={"database": describe(url), "reason": type(exc).__name__},
        )
    if settings.store_retention_days is not None:
        days = settings.store_retention_days
        store.writer.every(3600.0, lambda: _prune(store, days))
    log.info("prediction store open", extra={"database": describe(url), "key_id": keys.write_id})
    return store


def _prune(store: PredictionStore, days: float) -> None:
    store.prune(days)
