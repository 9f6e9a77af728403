"""Alembic environment: runs on the connection the store hands over (``Store.migrate``)."""

from alembic import context

from durable_journeys.activities.store._tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `journeys db upgrade` (Store.migrate), not bare alembic")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
