"""The installation's record of LALAL.AI minutes it has consumed.

LALAL.AI's API tells how many minutes are *left* on a key, not how many were
used or how big the plan was, so the seed's ``used_minutes`` has to be counted
here. Until the database layer exists, the record is an append-only JSON-lines
file, ``{data_dir}/lalalai/usage.jsonl``: one line per finished provider task,
appended under an exclusive lock so the web process and workers can share it,
and read tolerantly (a torn last line from a crash is skipped). Anything that
implements ``UsageLedger`` (two methods) can replace it, e.g. a table.

Keys are recorded by fingerprint (``keys.key_id``), never in clear.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from soundforge.config import Settings

try:  # POSIX; on Windows appends of one short line are atomic enough in practice
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms we test
    fcntl = None  # type: ignore[assignment]

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
    at: float = field(default_factory=time.time)


class UsageLedger(Protocol):
    def record(self, entry: UsageEntry) -> None: ...

    def used_minutes(self, key_id: str) -> float: ...


class JsonlUsageLedger:
    """``UsageLedger`` on an append-only JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_settings(cls, settings: Settings) -> JsonlUsageLedger:
        return cls(settings.data_dir / "lalalai" / "usage.jsonl")

    def record(self, entry: UsageEntry) -> None:
        line = json.dumps(asdict(entry), ensure_ascii=False, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def entries(self) -> list[UsageEntry]:
        if not self.path.exists():
            return []
        out: list[UsageEntry] = []
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    out.append(UsageEntry(**json.loads(line)))
                except (ValueError, TypeError):
                    log.warning("%s:%d: unreadable usage line skipped", self.path, number)
        return out

    def used_minutes(self, key_id: str) -> float:
        # One line per task id: a task recorded twice (a retried write) counts once.
        seen: dict[str, float] = {}
        for entry in self.entries():
            if entry.key_id == key_id:
                seen[entry.task_id] = entry.minutes
        return sum(seen.values())
