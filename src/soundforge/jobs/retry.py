"""A separation whose runner process died: retried like a dead worker.

The runner holds the model, so when the machine runs out of memory the
kernel's OOM killer picks it, not the worker. The worker sees the runner's
pipe close (``RunnerLostError``). That is no verdict on the job: it goes back
to the queue, within the same attempt budget as a dead worker
(``SOUNDFORGE_JOB_MAX_ATTEMPTS``), with the cause written to its history. A
job whose runner is killed on every try ends ``failed`` (``runner_lost``)
with a message that names the probable cause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from soundforge.db.models import JobStatus
from soundforge.errors import RunnerLostError
from soundforge.jobs import state
from soundforge.jobs.pipeline import Pipeline
from soundforge.library.files import remove_job_files

log = logging.getLogger(__name__)


def after_runner_lost(
    pipeline: Pipeline,
    job_id: str,
    worker_id: str,
    exc: RunnerLostError,
    on_requeue: Callable[[str], None] | None,
) -> str | None:
    """Requeue the job if attempts remain, else fail it; returns the new status."""
    job = state.load_job(pipeline, job_id)
    if job is None:
        return None
    max_attempts = pipeline.config.job_max_attempts
    history = state.history_with(pipeline, job_id, "runner_lost", exc.message)
    # The killed run's staging folders: nobody else can own them yet.
    remove_job_files(pipeline.settings, job_id, staging_only=True)
    if job.attempts < max_attempts:
        event = state.requeue(pipeline, job_id, worker_id, count_attempt=True, history=history)
        if event is None:
            return None
        log.warning("job %s: its runner died (attempt %d of %d); queued again: %s",
                    job_id, job.attempts, max_attempts, exc.message)
        if on_requeue is not None:
            on_requeue(job_id)
        return JobStatus.QUEUED.value
    message = (
        f"The separation stopped because the Demucs runner process was killed on each of "
        f"its {job.attempts} attempt(s) (last: {exc.message}) The most likely cause is "
        "memory: when the machine runs out, the operating system stops the process that "
        "holds the model. Try a shorter file, a lighter model (htdemucs rather than "
        "htdemucs_ft or mdx_extra), fewer jobs at once (SOUNDFORGE_WORKER_CONCURRENCY), "
        "or a machine with more memory."
    )
    log.error("job %s failed: its runner died on every attempt", job_id)
    event = state.fail(pipeline, job_id, worker_id, message, RunnerLostError.code,
                       history=history)
    return JobStatus.FAILED.value if event is not None else None
