"""Alembic environment: runs on the connection ``upgrade_database`` hands over."""

from __future__ import annotations

from alembic import context

from soundforge.db import models  # noqa: F401  (registers the tables on Base.metadata)
from soundforge.db.base import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run migrations through soundforge.db.upgrade_database(settings) "
        "(or `python -m soundforge.db upgrade`), which supplies the connection."
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
