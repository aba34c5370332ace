"""The data layer: tables, sessions, migrations.

    from soundforge.db import Database, upgrade_database, User, Track, ProcessingJob, Stem

    db = Database(settings)           # one per process
    upgrade_database(settings, db)    # at start: create/upgrade the schema
    with db.transaction() as session:
        ...
"""

from soundforge.db.base import Base, utcnow
from soundforge.db.migrate import upgrade_database
from soundforge.db.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    ApiToken,
    JobStatus,
    ProcessingJob,
    Stem,
    Track,
    User,
    UserSettings,
)
from soundforge.db.session import Database, database_url

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "ApiToken",
    "Base",
    "Database",
    "JobStatus",
    "ProcessingJob",
    "Stem",
    "Track",
    "User",
    "UserSettings",
    "database_url",
    "upgrade_database",
    "utcnow",
]
