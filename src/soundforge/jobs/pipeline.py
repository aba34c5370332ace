"""``Pipeline``: what the job functions need, opened once per process.

It holds the settings, the database, the queue and the event bus, so that a
web process and a worker agree on all four by construction::

    pipeline = Pipeline.open(settings)      # also upgrades the schema
    job = create_separation_job(pipeline, user, track, {"stems": "vocals"})
    pipeline.close()
"""

from __future__ import annotations

from pathlib import Path

from soundforge.config import Settings, get_settings
from soundforge.db.migrate import upgrade_database
from soundforge.db.session import Database
from soundforge.jobs.config import PipelineSettings
from soundforge.jobs.events import DatabaseEventBus, EventBus, is_redis_url
from soundforge.jobs.queue import JobQueue
from soundforge.jobs.redis_events import RedisEventBus


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        database: Database | None = None,
        queue: JobQueue | None = None,
        events: EventBus | None = None,
        config: PipelineSettings | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or PipelineSettings()
        self.db = database or Database(settings)
        self.queue = queue or JobQueue(settings)
        self.events = events or open_event_bus(settings, self.db, self.config)

    @classmethod
    def open(
        cls, settings: Settings | None = None, *, config: PipelineSettings | None = None
    ) -> Pipeline:
        """Open everything and bring the database schema up to date."""
        settings = settings or get_settings()
        pipeline = cls(settings, config=config)
        upgrade_database(settings, pipeline.db)
        return pipeline

    @property
    def uploads_dir(self) -> Path:
        return self.settings.uploads_dir

    @property
    def stems_dir(self) -> Path:
        return self.uploads_dir / "stems"

    @property
    def tracks_dir(self) -> Path:
        return self.uploads_dir / "tracks"

    def close(self) -> None:
        self.events.close()
        self.queue.close()
        self.db.dispose()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_event_bus(
    settings: Settings, database: Database, pipeline: PipelineSettings | None = None
) -> EventBus:
    """Redis pub/sub when the queue is on Redis, else polling the job rows."""
    if is_redis_url(settings.queue_url):
        assert settings.queue_url is not None
        return RedisEventBus(settings.queue_url, database)
    interval = (pipeline or PipelineSettings()).events_poll_interval
    return DatabaseEventBus(database, interval)
