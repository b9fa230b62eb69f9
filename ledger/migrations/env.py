"""Alembic environment: the connection comes from `ledger.db.migrate` (config.attributes["connection"])."""

from __future__ import annotations

from alembic import context

from ledger.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    raise RuntimeError("run migrations through ledger.db.migrate(engine), which supplies the connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
