"""Alembic environment: always run online, on the connection ``storage.engine.migrate`` hands over."""

from alembic import context

from wcnotify.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
