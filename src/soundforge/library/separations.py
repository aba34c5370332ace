"""Deleting one separation of a track: its row, its stems and their files.

Like ``delete_track``, for a single job: the row goes first (the database
cascades to its stems), then a ``deleted`` event tells open pages, then the
files go. A running separation is stopped that way too: its worker notices
the row is gone within a poll interval and throws its output away. Every job
owns its own stem files (reused stems are hard links), so no other separation
loses anything.
"""

from __future__ import annotations

from sqlalchemy import select

from soundforge.db.accounts import user_id_of
from soundforge.db.errors import NotFoundError
from soundforge.db.models import ProcessingJob, User
from soundforge.jobs.events import JobEvent
from soundforge.jobs.pipeline import Pipeline
from soundforge.library.files import job_stems_dir, remove_job_files, remove_tree


def delete_separation(pipeline: Pipeline, user: User | int, job_id: str) -> str:
    """Delete the user's separation ``job_id`` with its stems and files;
    returns its track's id. ``NotFoundError`` for another user's job."""
    user_id = user_id_of(user)
    with pipeline.db.transaction() as session:
        job = session.scalar(
            select(ProcessingJob).where(ProcessingJob.id == job_id,
                                        ProcessingJob.user_id == user_id)
        )
        if job is None:
            raise NotFoundError.of("separation")
        track_id, version, status = job.track_id, job.version, job.status
        session.delete(job)
    pipeline.events.publish(JobEvent.deleted(job_id, user_id, track_id, version + 1))
    if status == "running":
        # Its worker removes its own staging folder when it stops.
        remove_tree(job_stems_dir(pipeline.settings, job_id))
    else:
        remove_job_files(pipeline.settings, job_id)
    return track_id
