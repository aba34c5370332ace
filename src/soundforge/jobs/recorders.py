"""What an engine reports while a job runs → the job's row.

Each recorder is handed to the engine for one job and writes only while the
job is still this worker's. A failed write is logged and never stops the
separation: losing a progress step or a note costs far less than the job.
"""

from __future__ import annotations

import logging

from soundforge.engines.base import ProviderWork
from soundforge.jobs import state
from soundforge.jobs.pipeline import Pipeline

log = logging.getLogger(__name__)

PROGRESS_STEP = 10


class ProgressReporter:
    """The engine's whole percents → one DB write + event per 10 % step."""

    def __init__(self, pipeline: Pipeline, job_id: str, worker_id: str) -> None:
        self.pipeline = pipeline
        self.job_id = job_id
        self.worker_id = worker_id
        self.written = 0

    def __call__(self, percent: int) -> None:
        step = (int(percent) // PROGRESS_STEP) * PROGRESS_STEP
        # 100 is written by the completion itself, together with the stems.
        if step <= self.written or step >= 100:
            return
        self.written = step
        try:
            state.set_progress(self.pipeline, self.job_id, self.worker_id, step)
        except Exception as exc:  # a progress write must never kill the separation
            log.warning("could not record progress of job %s: %s", self.job_id, exc)


class ProviderWorkRecorder:
    """The engine's ``on_provider_work`` hook: LALAL.AI's source and task ids →
    the job row, as soon as each exists, so the row shows them while the job
    runs and recovery can release them if this worker dies."""

    def __init__(self, pipeline: Pipeline, job_id: str, worker_id: str) -> None:
        self.pipeline = pipeline
        self.job_id = job_id
        self.worker_id = worker_id

    def __call__(self, work: ProviderWork) -> None:
        try:
            state.record_provider_work(
                self.pipeline, self.job_id, self.worker_id, work.task_ids, work.source_id
            )
        except Exception as exc:
            # Like progress, a failed write must not kill a paid separation: the
            # only loss is that a crash right now would leave the tasks running.
            log.warning("could not record the provider tasks of job %s: %s", self.job_id, exc)


class NoticeRecorder:
    """The engine's ``on_notice`` hook: the Demucs runner's notices (the engine
    retrying out of GPU memory with a smaller batch or shorter segments) → an
    entry ``notice`` in the job's history, so the job says why it took longer
    or sounds slightly different."""

    def __init__(self, pipeline: Pipeline, job_id: str, worker_id: str) -> None:
        self.pipeline = pipeline
        self.job_id = job_id
        self.worker_id = worker_id

    def __call__(self, text: str) -> None:
        try:
            state.note(self.pipeline, self.job_id, self.worker_id, "notice", text)
        except Exception as exc:
            log.warning("could not record a notice of job %s (%s): %s", self.job_id, text, exc)

