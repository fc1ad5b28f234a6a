"""Alembic environment: run on the connection bidui hands over (bidui.clues.db.upgrade)."""

from alembic import context

from bidui.clues.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through bidui.clues.db.upgrade (it passes the connection)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
