"""The store's tables: one schema (SQLAlchemy Core) for SQLite and PostgreSQL; migrations create it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# One row per answered prediction. Everything a customer could be recognised by (the inputs, the ID
# value) and what the model said (outputs, probabilities) is encrypted; id_hash is an HMAC of the ID.
predictions = Table(
    "predictions",
    metadata,
    Column("prediction_id", String(64), primary_key=True),
    Column("request_id", String(128), nullable=True),
    Column("id_hash", String(64), nullable=True),
    Column("model_version", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("caller", String(128), nullable=True),
    Column("key_id", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # AES-256-GCM of {"record", "id", "outputs"}
    Index("ix_predictions_id_hash_created", "id_hash", "created_at"),
    Index("ix_predictions_created", "created_at"),
)

# Every label ever given, kept for audit: the newest row of a prediction is its label.
labels = Table(
    "labels",
    metadata,
    Column("label_id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("prediction_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("caller", String(128), nullable=True),
    Column("key_id", String(64), nullable=False),
    Column("label", LargeBinary, nullable=False),
    Index("ix_labels_prediction", "prediction_id", "label_id"),
    Index("ix_labels_created", "created_at"),
)

# The fleet's model activations; the newest is the active version of every replica sharing the store.
fleet_activations = Table(
    "fleet_activations",
    metadata,
    Column("activation_id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("activated_by", String(256), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Drift slot counts each replica adds per time bucket (aggregates only: no row can be recovered).
drift_counts = Table(
    "drift_counts",
    metadata,
    Column("replica", String(128), primary_key=True),
    Column("bucket", DateTime(timezone=True), primary_key=True),
    Column("model_version", String(64), primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("counts", Text, nullable=False),
    Index("ix_drift_counts_bucket", "bucket"),
)
