"""Declarative base and column types shared by every table.

Two details matter for running the same schema on SQLite and PostgreSQL:

* a naming convention for constraints, so Alembic can find and alter them by
  name on both (SQLite's batch mode recreates tables and needs the names);
* ``UTCDateTime``: SQLite has no time zones and hands back naive datetimes, so
  every timestamp is stored as UTC and always read back as an aware UTC value.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


# The largest integer key SQLite and PostgreSQL's BIGINT can hold. An id from a
# URL beyond it cannot name a row, and would overflow the database driver.
MAX_ROW_ID = 2**63 - 1


def is_row_id(value: int) -> bool:
    """Whether an integer from outside can be an integer primary key at all."""
    return 1 <= value <= MAX_ROW_ID


def is_uuid(value: str) -> bool:
    """Whether a string from outside can be one of our UUID keys.

    Checked before a lookup, so odd input (NUL bytes, megabytes of text) never
    reaches the database, where PostgreSQL would refuse it with an error."""
    if len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use soundforge.db.utcnow()")
        value = value.astimezone(UTC)
        # SQLite stores the text form; drop tzinfo so every row compares the same way.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
