"""The prediction store: every answered prediction, encrypted, with the labels that arrive later.

Why ~300 lines: this is the one place that reads and writes the store's tables (predictions,
labels, the fleet's activations); the writer thread, the keys, the engine and the label matching
live in their own modules beside it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine, and_, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from api.store.drift import FleetDrift
from api.store.engine import migrate
from api.store.guard import guard
from api.store.keys import Keyring
from api.store.schema import drift_counts, fleet_activations, labels, predictions
from api.store.writer import BatchWriter, WriterMetrics

log = logging.getLogger("api.store")
_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
# The writer's inserts, in the driver's own parameter style (rows are tuples in this column order).
INSERT_SQLITE = (
    "INSERT OR IGNORE INTO predictions (prediction_id, request_id, id_hash, model_version, created_at, caller, "
    "key_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_POSTGRESQL = (
    "INSERT INTO predictions (prediction_id, request_id, id_hash, model_version, created_at, caller, "
    "key_id, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (prediction_id) DO NOTHING"
)


class Answered(NamedTuple):
    """One answered request as the route saw it; turned into rows (and encrypted) on the writer thread.

    A NamedTuple, not a frozen dataclass: one is built per request on the event loop, in a quarter of the time.
    """

    records: Sequence[Any]
    ids: Sequence[Any] | None
    values: Sequence[Any]
    probabilities: Any  # (rows, classes) array or None
    class_keys: Sequence[str]
    prediction_ids: Sequence[str]
    model_version: str
    request_id: str | None
    caller: str | None
    at: datetime


@dataclass(frozen=True)
class StoredPrediction:
    """A prediction as read back: ids, version, time, decrypted inputs and outputs."""

    prediction_id: str
    model_version: str
    created_at: datetime
    request_id: str | None
    caller: str | None
    inputs: Any
    id: Any
    outputs: dict[str, Any]


@dataclass(frozen=True)
class StoredLabel:
    """One label given to a prediction (the newest one counts; earlier ones are kept for audit)."""

    label: Any
    created_at: datetime
    caller: str | None


@dataclass(frozen=True)
class Activation:
    """One recorded fleet activation (api.fleet's Active)."""

    version: str
    activation_id: int
    activated_by: str | None = None
    created_at: datetime | None = None


class PredictionStore:
    """Writes answered predictions in the background; reads them back for feedback, audit and monitoring."""

    def __init__(
        self, engine: Engine, keys: Keyring, metrics: WriterMetrics, *, flush_seconds: float, buffer_rows: int
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.writer = BatchWriter(self._rows, self._insert, metrics, flush_seconds=flush_seconds, max_rows=buffer_rows)
        # A retry after an ambiguous failure (committed, but the answer was lost) must not fail forever.
        if engine.dialect.name == "sqlite":
            self._insert_sql = INSERT_SQLITE
            self._timestamp: Any = _sqlite_text
        else:
            self._insert_sql = INSERT_POSTGRESQL
            self._timestamp = lambda at: at
        self.fleet = FleetVersions(engine)
        self.drift = FleetDrift(engine)
        self._migrated = threading.Event()
        self.writer.every(1.0, self._schema_soon)

    def _schema_soon(self) -> None:
        with contextlib.suppress(SQLAlchemyError):  # unreachable still: the next round tries again
            self.ensure_schema()

    # --- writing -------------------------------------------------------------------------
    def record(self, answered: Answered) -> None:
        """Queue an answered request (the hot path: no encryption, no I/O here)."""
        self.writer.submit(answered, len(answered.prediction_ids))

    def _rows(self, batch: Sequence[Answered]) -> list[tuple[Any, ...]]:
        """Rows in the INSERT_* column order, encrypted: every queued request in one pass, on the writer thread.

        One pass, not one call per request: the nonces of the whole batch come from one ``urandom``, and
        each plaintext is encrypted as soon as it is serialised (a list of orjson's buffers kept until a
        later encryption loop cost more than the serialisation itself).
        """
        keys, timestamp = self.keys, self._timestamp
        key_id, seal = keys.write_id, keys.sealer(sum(len(a.prediction_ids) for a in batch)).seal
        rows: list[tuple[Any, ...]] = []
        add = rows.append
        for records, ids, values, scores, class_keys, prediction_ids, version, rid, caller, answered_at in batch:
            probabilities = scores.tolist() if scores is not None else None
            at = timestamp(answered_at)
            for index, prediction_id in enumerate(prediction_ids):
                outputs: dict[str, Any] = {"prediction": values[index]}
                if probabilities is not None:
                    outputs["probabilities"] = dict(zip(class_keys, probabilities[index], strict=True))
                customer = ids[index] if ids is not None else None
                payload = orjson.dumps({"record": records[index], "id": customer, "outputs": outputs}, option=_JSON)
                id_hash = keys.id_hash(str(customer)) if customer is not None else None
                add((prediction_id, rid, id_hash, version, at, caller, key_id, seal(payload, prediction_id.encode())))
        return rows

    def ensure_schema(self) -> None:
        """Apply the migrations once (at start, or on the writer's first contact after an outage at start)."""
        if not self._migrated.is_set():
            migrate(self.engine)
            self._migrated.set()

    def _insert(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.ensure_schema()
        # The driver's own executemany: SQLAlchemy's per-row parameter processing cost more than the encryption.
        with self.engine.begin() as connection:
            connection.exec_driver_sql(self._insert_sql, list(rows))

    def prune(self, days: float) -> int:
        """Delete predictions older than ``days`` and their labels (and drift counts); returns predictions deleted."""
        cutoff = datetime.now(UTC) - timedelta(days=days)
        old = select(predictions.c.prediction_id).where(predictions.c.created_at < cutoff)
        with self.engine.begin() as connection:
            connection.execute(delete(labels).where(labels.c.prediction_id.in_(old)))
            connection.execute(delete(drift_counts).where(drift_counts.c.bucket < cutoff))
            deleted = connection.execute(delete(predictions).where(predictions.c.created_at < cutoff)).rowcount
        if deleted:
            log.info("prediction store: pruned old predictions", extra={"rows": deleted, "days": days})
        return int(deleted or 0)

    # --- reading -------------------------------------------------------------------------
    def find(self, prediction_id: str | None = None, *, id_value: str | None = None,
             model_version: str | None = None, limit: int = 1) -> list[StoredPrediction]:  # fmt: skip
        """Predictions by id, or the newest ones for an ID_FIELD value (optionally of one model version)."""
        query = select(predictions)
        if prediction_id is not None:
            query = query.where(predictions.c.prediction_id == prediction_id)
        else:
            query = query.where(predictions.c.id_hash.in_(self.keys.id_hashes(str(id_value))))
        if model_version is not None:
            query = query.where(predictions.c.model_version == model_version)
        query = query.order_by(predictions.c.created_at.desc(), predictions.c.prediction_id.desc()).limit(limit)
        with guard("read predictions"), self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [self._decrypted(row) for row in rows]

    def _decrypted(self, row: Any) -> StoredPrediction:
        context = row["prediction_id"].encode()
        payload = orjson.loads(self.keys.decrypt(row["key_id"], row["payload"], context))
        return StoredPrediction(
            row["prediction_id"], row["model_version"], _utc(row["created_at"]), row["request_id"], row["caller"],
            payload["record"], payload["id"], payload["outputs"],
        )  # fmt: skip

    def labels_of(self, prediction_ids: Iterable[str]) -> dict[str, list[StoredLabel]]:
        """Every label given to these predictions, oldest first."""
        ids = list(prediction_ids)
        query = select(labels).where(labels.c.prediction_id.in_(ids)).order_by(labels.c.label_id)
        with guard("read labels"), self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        found: dict[str, list[StoredLabel]] = {pid: [] for pid in ids}
        for row in rows:
            value = orjson.loads(self.keys.decrypt(row["key_id"], row["label"], _label_context(row["prediction_id"])))
            found[row["prediction_id"]].append(StoredLabel(value, _utc(row["created_at"]), row["caller"]))
        return found

    def add_labels(self, pairs: Sequence[tuple[str, Any]], caller: str | None) -> None:
        """Append labels (the newest per prediction counts; history stays)."""
        now = datetime.now(UTC)
        rows = [
            {
                "prediction_id": pid,
                "created_at": now,
                "caller": caller,
                "key_id": self.keys.write_id,
                "label": self.keys.encrypt(orjson.dumps(value, option=_JSON), _label_context(pid)),
            }
            for pid, value in pairs
        ]
        if rows:
            with guard("write labels"), self.engine.begin() as connection:
                connection.execute(insert(labels), rows)

    def labelled(
        self, *, model_version: str | None, limit: int, since: datetime | None
    ) -> list[tuple[Any, dict[str, Any]]]:
        """(newest label, outputs) of the most recently labelled predictions, newest first."""
        newest = (
            select(labels.c.prediction_id, func.max(labels.c.label_id).label("label_id"))
            .group_by(labels.c.prediction_id)
            .subquery()
        )
        query = (
            select(
                labels.c.prediction_id,
                labels.c.key_id.label("label_key"),
                labels.c.label,
                predictions.c.key_id,
                predictions.c.payload,
            )
            .join(newest, labels.c.label_id == newest.c.label_id)
            .join(predictions, predictions.c.prediction_id == labels.c.prediction_id)
        )
        conditions = []
        if model_version is not None:
            conditions.append(predictions.c.model_version == model_version)
        if since is not None:
            conditions.append(predictions.c.created_at >= since)
        if conditions:
            query = query.where(and_(*conditions))
        query = query.order_by(labels.c.label_id.desc()).limit(limit)
        with guard("read labels"), self.engine.connect() as connection:
            rows = connection.execute(query).all()
        keys = self.keys
        return [
            (
                orjson.loads(keys.decrypt(row.label_key, row.label, _label_context(row.prediction_id))),
                orjson.loads(keys.decrypt(row.key_id, row.payload, row.prediction_id.encode()))["outputs"],
            )
            for row in rows
        ]

    def close(self, timeout: float) -> int:
        """Write what is buffered, then release the connections; returns rows left unwritten."""
        left = self.writer.stop(timeout)
        self.engine.dispose()
        return left


class FleetVersions:
    """The fleet's active model version (api.fleet.VersionStore): the newest recorded activation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get_active_version(self) -> Activation | None:
        history = self.history(1)
        return history[0] if history else None

    def set_active_version(self, version: str, by: str | None) -> Activation:
        by_whom, now = (by or "")[:256] or None, datetime.now(UTC)
        row = {"version": version, "activated_by": by_whom, "created_at": now}
        with guard("record the active version"), self.engine.begin() as connection:
            key = connection.execute(insert(fleet_activations).values(row)).inserted_primary_key
        assert key is not None
        return Activation(version, int(key[0]), by_whom, now)

    def history(self, limit: int = 20) -> list[Activation]:
        query = select(fleet_activations).order_by(fleet_activations.c.activation_id.desc()).limit(limit)
        with guard("read the active version"), self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [Activation(r.version, int(r.activation_id), r.activated_by, _utc(r.created_at)) for r in rows]


def _sqlite_text(at: datetime) -> str:
    # SQLAlchemy's SQLite DateTime is this text (UTC here), so its queries compare and parse it; isoformat
    # writes it in two thirds of strftime's time (once per request, on the writer thread).
    return at.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def _label_context(prediction_id: str) -> bytes:
    return b"label:" + prediction_id.encode()


def _utc(value: datetime) -> datetime:
    # SQLite gives back naive datetimes: they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
