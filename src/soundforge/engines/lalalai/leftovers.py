"""Work a command-line run left at LALAL.AI when it was killed outright.

Ctrl-C and SIGTERM unwind through the engine's own clean-up. SIGKILL, an
out-of-memory kill or a power cut does not, and leaves the uploaded file
(the user's audio, on a third party's server) and any unfinished tasks behind.
The job pipeline records this work in its database and its recovery releases
it. A bare ``soundforge separate --engine lalalai`` has no database, so while
a file is at the provider the command keeps one small file,
``{data_dir}/lalalai/running/{host}-{pid}.json``. It holds the ids and the
key's fingerprint, never the key. The next run with the same key releases
the work of runs whose process is gone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from soundforge.config import Settings
from soundforge.engines.base import ProviderWork
from soundforge.engines.lalalai.keys import key_id
from soundforge.engines.lalalai.release import ReleaseOutcome, release_provider_work
from soundforge.storage.atomic import write_text_atomically

log = logging.getLogger(__name__)


def _folder(settings: Settings) -> Path:
    return settings.data_dir / "lalalai" / "running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


@dataclass
class RunningWork:
    """This process's record of what it holds at LALAL.AI right now."""

    path: Path
    key_id: str

    def record(self, work: ProviderWork) -> None:
        """An ``on_tasks`` callback: rewritten whole each time the work grows.

        A record that cannot be written (full disk, read-only data folder) does
        not stop the separation: it is a safety net for a kill, and the
        separation's own clean-up still runs in every other case.
        """
        data = {"key": self.key_id, "source_id": work.source_id, "task_ids": list(work.task_ids)}
        try:
            write_text_atomically(self.path, json.dumps(data))
        except OSError as exc:
            log.warning("LALAL.AI: could not record this run's provider work in %s: %s "
                        "(if the process is killed, nothing will release it)", self.path, exc)

    def clear(self) -> None:
        """The separation ended and cleaned up after itself."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # the record was never written (see record())
            log.debug("LALAL.AI: no record to clear at %s: %s", self.path, exc)


def running_work(settings: Settings, key: SecretStr) -> RunningWork:
    name = f"{socket.gethostname()}-{os.getpid()}.json"
    return RunningWork(_folder(settings) / name, key_id(key))


def release_leftovers(settings: Settings, key: SecretStr) -> list[ReleaseOutcome]:
    """Release what dead runs on this machine left at LALAL.AI with ``key``.

    Records of live processes, of other machines sharing the data folder and of
    other keys are left alone. A record is removed once the provider answered
    (what it could not do is in the outcome); one the provider never answered
    (network down) is kept for the next run.
    """
    host, mine = socket.gethostname(), key_id(key)
    outcomes = []
    try:
        records = sorted(_folder(settings).glob(f"{host}-*.json"))
    except OSError:
        return []
    for path in records:
        try:
            pid = int(path.stem.rsplit("-", 1)[1])
            data = json.loads(path.read_text())
        except (OSError, ValueError, IndexError):
            log.warning("LALAL.AI: unreadable record of a stopped run: %s", path)
            continue
        if pid == os.getpid() or _alive(pid) or data.get("key") != mine:
            continue
        outcome = release_provider_work(
            settings, key, [str(t) for t in data.get("task_ids", [])], data.get("source_id")
        )
        outcomes.append(outcome)
        answered = outcome.cancelled or outcome.not_cancelled or outcome.source_deleted
        if outcome.complete or answered:
            path.unlink(missing_ok=True)
    return outcomes
