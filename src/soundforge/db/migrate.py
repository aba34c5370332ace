"""Schema migrations (Alembic), applied by the program itself at start.

``upgrade_database(settings)`` brings the database to the newest revision. Web
processes and workers all call it when they start; several may start at once,
so the upgrade runs under a lock: a PostgreSQL advisory lock (works across
machines), or a file lock beside the SQLite file (SQLite is one machine).

The migration scripts live in the package (``soundforge/db/migrations``), so an
installed SoundForge can upgrade its own database; a schema change is always a
new revision there, never an edit of an old one.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from soundforge.config import Settings
from soundforge.db.secret_check import verify_installation_secret
from soundforge.db.session import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every SoundForge process.
_PG_LOCK_ID = 0x50F7F0E6


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(settings: Settings, database: Database | None = None) -> None:
    """Create or upgrade every table to the newest revision (safe to call concurrently)."""
    owned = database is None
    db = database or Database(settings)
    try:
        with _migration_lock(db):
            if current_revision(db.engine) != head_revision():
                with db.engine.begin() as connection:
                    _upgrade(connection)
            # Every start, not only the first: a node with another secret must not run.
            verify_installation_secret(settings, db)
    finally:
        if owned:
            db.dispose()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@contextlib.contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    if db.is_sqlite:
        database = db.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                connection.commit()
        return
    yield
