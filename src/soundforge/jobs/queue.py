"""The durable queue (Huey): SQLite in ``data_dir`` by default, Redis by URL.

The queue carries one kind of task, ``soundforge.run_job(job_id)``: a wake-up
for a worker. Everything about the job lives in its database row, which a
worker claims atomically before running it (``UPDATE … WHERE status='queued'``),
so a task delivered twice, or a task for a cancelled or deleted job, is a
harmless no-op. That is what makes re-sending a possibly lost task safe (see
``soundforge.jobs.recovery``).

``SOUNDFORGE_QUEUE_URL`` unset → ``SqliteHuey`` on ``data_dir/queue.db`` (one
machine, no server). ``redis://…`` → ``RedisHuey`` (many machines; workers
block on the list and wake up at once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from huey import Huey, RedisHuey, SqliteHuey
from huey.api import Task

from soundforge.config import Settings
from soundforge.jobs.events import is_redis_url

log = logging.getLogger(__name__)

QUEUE_NAME = "soundforge"
QUEUE_FILENAME = "queue.db"
TASK_NAME = "soundforge.run_job"

JobHandler = Callable[[str], None]


class JobQueue:
    """Send job ids to workers; a worker installs ``handler`` to run them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.huey = make_huey(settings)
        self._handler: JobHandler | None = None
        self._lock = threading.Lock()

        def run_job(job_id: str) -> None:
            handler = self._handler
            if handler is None:
                raise RuntimeError("this process is not a worker: it cannot run jobs")
            handler(job_id)

        self._task = self.huey.task(name=TASK_NAME)(run_job)

    @property
    def is_redis(self) -> bool:
        return is_redis_url(self.settings.queue_url)

    def set_handler(self, handler: JobHandler | None) -> None:
        self._handler = handler

    def enqueue(self, job_id: str) -> None:
        """Send a task for ``job_id`` (raises if the queue cannot be reached)."""
        self._task(job_id)

    def dequeue(self) -> Task | None:
        """The next task, or None (Redis waits up to a second for one; SQLite returns at once)."""
        return self.huey.dequeue()

    def execute(self, task: Task) -> None:
        self.huey.execute(task)

    def pending_job_ids(self) -> set[str]:
        """Job ids of the tasks waiting in the queue (for the reconciler)."""
        ids: set[str] = set()
        for task in self.huey.pending():
            if task.name.endswith(TASK_NAME) and task.args:
                ids.add(str(task.args[0]))
        return ids

    def pending_count(self) -> int:
        return self.huey.pending_count()

    def flush(self) -> None:
        self.huey.flush()

    def close(self) -> None:
        close = getattr(self.huey.storage, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:  # closing a dead connection must not mask the real error
                log.debug("closing the queue storage failed: %s", exc)


def queue_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / QUEUE_FILENAME


def make_huey(settings: Settings) -> Huey:
    # results=False: nothing reads task results; the job row is the result.
    if is_redis_url(settings.queue_url):
        return RedisHuey(
            QUEUE_NAME, url=settings.queue_url, results=False, blocking=True, read_timeout=1
        )
    if settings.queue_url:
        raise ValueError(
            f"SOUNDFORGE_QUEUE_URL={settings.queue_url!r} is not supported: use redis://… "
            "or leave it unset for the SQLite queue in the data directory."
        )
    path = queue_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(path.absolute()), results=False, timeout=30)
