"""Database engine and sessions: SQLite in ``data_dir`` by default, PostgreSQL by URL.

``SOUNDFORGE_DATABASE_URL`` unset → ``sqlite:///{data_dir}/soundforge.db``.
``postgresql://…`` (or ``postgres://…``) is run through psycopg 3, the driver
the project installs.

SQLite is set up for several processes (web + workers) on one machine: WAL (readers
never block the writer), foreign keys on (the schema's ``ON DELETE CASCADE``
depends on it), and a 30 s busy timeout so a writer waits its turn instead of
failing. Python's sqlite3 module begins a transaction only at the first write,
so a read-then-write session takes the write lock at its first write and waits
for it there; state changes that race (claiming a job, finishing it) are
conditional UPDATEs (``… WHERE status = 'queued'``), which are atomic on both
backends, rather than read-then-write logic.

Usage::

    db = Database(settings)
    with db.transaction() as session:   # commits, or rolls back on error
        session.add(thing)
    with db.session() as session:       # no implicit commit
        session.scalars(select(Track)).all()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from soundforge.config import Settings

SQLITE_FILENAME = "soundforge.db"
SQLITE_BUSY_TIMEOUT_S = 30.0


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL for these settings, with the driver made explicit."""
    url = settings.database_url
    if not url:
        path = (Path(settings.data_dir) / SQLITE_FILENAME).absolute()
        return f"sqlite:///{path}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_db_engine(settings: Settings, **kwargs: Any) -> Engine:
    url = database_url(settings)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {})
        kwargs["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
        kwargs["connect_args"].setdefault("check_same_thread", False)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        # WAL is a property of the file and sticks; asking again is cheap.
        cursor.execute("PRAGMA journal_mode = WAL")
        # With WAL, NORMAL is durable against application crashes (SIGKILL);
        # only a power cut can lose the last commits, never corrupt the file.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


class Database:
    """One engine and its session factory; share one per process."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_db_engine(settings)
        self.url = self.engine.url.render_as_string(hide_password=False)
        # expire_on_commit=False: objects returned from a finished transaction
        # stay readable (a job's fields after create_separation_job returns).
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        return self.sessionmaker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed at the end, or rolled back on error."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

