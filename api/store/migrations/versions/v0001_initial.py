"""The prediction store: predictions, labels (with history), fleet activations, drift counts.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.Integer().with_variant(sa.BigInteger, "postgresql")


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("id_hash", sa.String(64), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.String(128), nullable=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_predictions_id_hash_created", "predictions", ["id_hash", "created_at"])
    op.create_index("ix_predictions_created", "predictions", ["created_at"])
    op.create_table(
        "labels",
        sa.Column("label_id", _ID, primary_key=True, autoincrement=True),
        sa.Column("prediction_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.String(128), nullable=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("label", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_labels_prediction", "labels", ["prediction_id", "label_id"])
    op.create_index("ix_labels_created", "labels", ["created_at"])
    op.create_table(
        "fleet_activations",
        sa.Column("activation_id", _ID, primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("activated_by", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "drift_counts",
        sa.Column("replica", sa.String(128), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("model_version", sa.String(64), primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
    )
    op.create_index("ix_drift_counts_bucket", "drift_counts", ["bucket"])


def downgrade() -> None:
    for table in ("drift_counts", "fleet_activations", "labels", "predictions"):
        op.drop_table(table)
