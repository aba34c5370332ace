"""Knobs of the pipeline (queue, workers, recovery), from ``SOUNDFORGE_*`` variables.

Kept apart from ``soundforge.config.Settings`` because only the pipeline reads
them; the defaults suit one laptop and a small cluster alike.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOUNDFORGE_", extra="ignore")

    worker_concurrency: int = Field(
        default=2, ge=1, description="Jobs one worker process runs at once (the seed's 2)."
    )
    job_max_attempts: int = Field(
        default=2,
        ge=1,
        description="How many times a job may be started. A job whose worker died is "
        "retried until this many attempts were made, then marked failed.",
    )
    heartbeat_interval: float = Field(
        default=5.0, gt=0, description="Seconds between a worker's heartbeats for its jobs."
    )
    orphan_timeout: float = Field(
        default=60.0,
        gt=0,
        description="A running job whose worker sent no heartbeat for this long is "
        "declared orphaned (its machine died). Jobs of dead workers on the same machine "
        "are recognised at once, without waiting.",
    )
    lalalai_release_delay: float = Field(
        default=30.0,
        gt=0,
        description="First wait before a worker tries again to release LALAL.AI work "
        "(cancel tasks, delete the upload) that a job could not release during a provider "
        "outage; it doubles after each failed try, up to an hour.",
    )
    reconcile_interval: float = Field(
        default=10.0, gt=0, description="Seconds between a worker's recovery sweeps."
    )
    redispatch_after: float = Field(
        default=30.0,
        gt=0,
        description="A queued job with no task in the queue this long after its last "
        "dispatch gets a new task (the enqueue was lost, e.g. the web process died "
        "between commit and enqueue).",
    )
    cancel_poll_interval: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between a worker's checks for cancelled or deleted jobs.",
    )
    events_poll_interval: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between database polls of a subscription when there is no "
        "Redis (the SQLite-queue setup).",
    )
    queue_poll_interval: float = Field(
        default=0.5,
        gt=0,
        description="Seconds an idle worker thread waits before asking the SQLite queue "
        "again (Redis queues wake up at once).",
    )
    gc_interval: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds between a worker's sweeps for files no row describes (left by "
        "a process killed at a bad moment); also run when a worker starts.",
    )
    gc_min_age: float = Field(
        default=600.0,
        ge=0,
        description="Only files older than this many seconds are considered leftovers.",
    )
