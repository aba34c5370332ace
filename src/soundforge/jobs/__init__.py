"""The processing pipeline: jobs, the queue, workers, live events.

The functions the web app (and scripts) call::

    from soundforge.jobs import Pipeline, create_separation_job, cancel_job

    pipeline = Pipeline.open(settings)                       # once per process
    job = create_separation_job(pipeline, user, track, {"stems": "vocals,drums"})
    cancel_job(pipeline, user, job.id)
    async with pipeline.events.asubscribe(job_ids=[job.id], until_final=True) as sub:
        async for event in sub: ...

See docs/pipeline.md for the data model, life cycle, topology and recovery rules.
"""

from soundforge.jobs.config import PipelineSettings
from soundforge.jobs.events import JobEvent
from soundforge.jobs.pipeline import Pipeline, open_event_bus
from soundforge.jobs.service import (
    QueueUnavailableError,
    cancel_job,
    cancel_user_jobs,
    create_separation_job,
    get_job,
    get_stem,
    list_jobs,
    stem_path,
)

__all__ = [
    "JobEvent",
    "Pipeline",
    "PipelineSettings",
    "QueueUnavailableError",
    "cancel_job",
    "cancel_user_jobs",
    "create_separation_job",
    "get_job",
    "get_stem",
    "list_jobs",
    "open_event_bus",
    "stem_path",
]
