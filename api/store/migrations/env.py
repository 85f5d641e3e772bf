"""Alembic environment: migrations run on the connection the store hands over (or DATABASE_URL's engine)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from api.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic -x url=…` from a shell
    engine = create_engine(context.get_x_argument(as_dictionary=True)["url"])
    with engine.begin() as own:
        context.configure(connection=own, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
