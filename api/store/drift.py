"""Drift across replicas: each replica adds its drift code counts per minute; any replica sums them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, insert, select, update

from api.store.guard import guard
from api.store.schema import drift_counts


class FleetDrift:
    """Per-replica, per-minute drift counts (aggregates: no row can be recovered from them)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, replica: str, model_version: str, counts: dict[str, Any], at: datetime | None = None) -> None:
        """Add counts to this replica's bucket of the current minute (only this replica writes its rows)."""
        bucket = (at or datetime.now(UTC)).replace(second=0, microsecond=0)
        c = drift_counts.c
        key = and_(c.replica == replica, c.bucket == bucket, c.model_version == model_version)
        with guard("write drift counts"), self.engine.begin() as connection:
            existing = connection.execute(select(drift_counts.c.counts).where(key)).scalar_one_or_none()
            if existing is None:
                row = {"replica": replica, "bucket": bucket, "model_version": model_version,
                       "rows": int(counts["rows"]), "counts": orjson.dumps(counts).decode()}  # fmt: skip
                connection.execute(insert(drift_counts).values(row))
                return
            merged = _added(orjson.loads(existing), counts)
            connection.execute(
                update(drift_counts).where(key).values(rows=int(merged["rows"]), counts=orjson.dumps(merged).decode())
            )

    def since(self, model_version: str, since: datetime) -> list[dict[str, Any]]:
        """Every replica's counts for ``model_version`` from ``since`` on."""
        query = select(drift_counts.c.counts).where(
            and_(drift_counts.c.model_version == model_version, drift_counts.c.bucket >= since)
        )
        with guard("read drift counts"), self.engine.connect() as connection:
            return [orjson.loads(text) for text in connection.execute(query).scalars()]


def _added(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    def vector(x: list[int], y: list[int]) -> list[int]:
        return [p + q for p, q in zip(x, y, strict=True)] if len(x) == len(y) else y

    return {
        "inputs": vector(a["inputs"], b["inputs"]), "rows": a["rows"] + b["rows"],
        "scores": vector(a["scores"], b["scores"]), "score_rows": a["score_rows"] + b["score_rows"],
    }  # fmt: skip
