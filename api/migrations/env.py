"""Alembic's migration environment: runs on the connection ``api.migrations`` hands in.

Offline mode (SQL scripts) is not supported: every run goes through ``api.migrations``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from api.migrations import context_options

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection) or context.is_offline_mode():
    raise RuntimeError("run migrations through api.migrations, which hands in a connection")

context.configure(connection=connection, **context_options(connection.dialect.name))
with context.begin_transaction():
    context.run_migrations()
