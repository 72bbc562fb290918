"""Alembic environment: always run from cloudd with a live connection handed in."""

from __future__ import annotations

from alembic import context

from cloudd.db.model import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("cloudd migrations run through `cloudd upgrade-db`, which provides the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
