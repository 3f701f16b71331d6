"""Alembic environment of the assistant's store: migrations run on the connection HandoffStore
or FeedbackStore passes in, with the store's own version table."""
from alembic import context

from supportbot.store import VERSION_TABLE, Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
