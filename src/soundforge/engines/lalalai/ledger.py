"""The installation's record of LALAL.AI minutes charged, in its database.

LALAL.AI's API tells how many minutes are *left* on a key, not how many were
used or how big the plan was, so the seed's ``used_minutes`` is counted here.
The record is the ``lalalai_usage`` table, so every web node and worker of an
installation counts the same minutes. A task is recorded when it **starts**,
which is when the provider charges it (duration × stems), so a task that is
then cancelled, fails or whose run dies is counted too; its entry is updated
with the provider's own length when it finishes. One row per key and task: a
task reported twice counts once.

Keys are recorded by fingerprint (``keys.key_id``), never in clear. A
``usage.jsonl`` left by an older version (``data_dir/lalalai/``) is imported
once and renamed ``usage.jsonl.imported``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from soundforge.config import Settings
from soundforge.db.migrate import upgrade_database
from soundforge.db.models import LalalaiUsage
from soundforge.db.session import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageEntry:
    key_id: str
    task_id: str
    seconds: int
    stems: int
    minutes: float
    source_name: str = ""
    preview: bool = False
    # Charged, but the task did not finish (cancelled, failed, its run stopped).
    cancelled: bool = False
    at: float = field(default_factory=time.time)


class UsageLedger(Protocol):
    def record(self, entry: UsageEntry) -> None: ...

    def used_minutes(self, key_id: str) -> float: ...


class DatabaseUsageLedger:
    """``UsageLedger`` on the ``lalalai_usage`` table."""

    def __init__(self, db: Database, *, owns_db: bool = False) -> None:
        self.db = db
        self._owns_db = owns_db

    @classmethod
    def for_settings(cls, settings: Settings) -> DatabaseUsageLedger:
        """The installation's ledger, for a caller without an open database (the
        command line): opens it, brings it up to date, imports an old file."""
        db = Database(settings)
        upgrade_database(settings, db)
        ledger = cls(db, owns_db=True)
        ledger.import_file(settings.data_dir / "lalalai" / "usage.jsonl")
        return ledger

    def record(self, entry: UsageEntry) -> None:
        """Add the task, or update it: the provider's final length wins, and a
        task once counted stays counted."""
        values = {
            "seconds": entry.seconds, "stems": entry.stems, "minutes": entry.minutes,
            "source_name": entry.source_name[:512], "preview": entry.preview,
            "cancelled": entry.cancelled, "at": entry.at,
        }
        where = (LalalaiUsage.key_id == entry.key_id, LalalaiUsage.task_id == entry.task_id)
        for _ in range(2):
            with self.db.transaction() as session:
                changed = session.execute(update(LalalaiUsage).where(*where).values(**values))
                if getattr(changed, "rowcount", 0):
                    return
            try:
                with self.db.transaction() as session:
                    session.add(LalalaiUsage(key_id=entry.key_id, task_id=entry.task_id,
                                             **values))
                return
            except IntegrityError:
                continue  # another process recorded it at the same instant: update it

    def used_minutes(self, key_id: str) -> float:
        with self.db.session() as session:
            total = session.scalar(
                select(func.coalesce(func.sum(LalalaiUsage.minutes), 0.0))
                .where(LalalaiUsage.key_id == key_id)
            )
        return float(total or 0.0)

    def import_file(self, path: Path) -> int:
        """Import an older version's JSON-lines ledger once; returns the entries read."""
        claimed = path.with_name(f"{path.name}.importing-{os.getpid()}")
        try:
            os.rename(path, claimed)  # only one process gets the file
        except FileNotFoundError:
            return 0
        count = 0
        with open(claimed, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    self.record(UsageEntry(**json.loads(line)))
                    count += 1
                except (ValueError, TypeError):
                    log.warning("%s:%d: unreadable usage line skipped", path, number)
        os.replace(claimed, path.with_name(f"{path.name}.imported"))
        log.info("imported %d LALAL.AI usage entries from %s into the database", count, path)
        return count

    def close(self) -> None:
        if self._owns_db:
            self.db.dispose()
