"""Deleting a track or one of its separations, with their jobs and files.

It lives in ``jobs/`` and not in ``library/`` because a deletion is also news
for the job pipeline: the row goes first (the database cascades to the jobs
and their stems), then a ``deleted`` event per job tells open pages, then the
files go. A worker running one of those jobs notices its row is gone within a
poll interval, stops the engine and throws its output away. Every job owns its
own stem files (reused stems are hard links), so no other separation loses
anything.
"""

from __future__ import annotations

from sqlalchemy import select

from soundforge.db.models import ProcessingJob, User
from soundforge.jobs.events import JobEvent
from soundforge.jobs.pipeline import Pipeline
from soundforge.jobs.service import get_job
from soundforge.library.files import job_stems_dir, remove_job_files, remove_tree, tracks_dir
from soundforge.library.tracks import get_track


def delete_track(pipeline: Pipeline, user: User | int, track_id: str) -> None:
    """Delete the track, its jobs (stopping a running one) and stems, and their files."""
    with pipeline.db.transaction() as session:
        track = get_track(session, user, track_id)
        jobs = session.execute(
            select(ProcessingJob.id, ProcessingJob.version, ProcessingJob.status).where(
                ProcessingJob.track_id == track.id
            )
        ).all()
        user_id = track.user_id
        session.delete(track)
    for job in jobs:
        pipeline.events.publish(JobEvent.deleted(job.id, user_id, track_id, job.version + 1))
    for job in jobs:
        _remove_files(pipeline, job.id, job.status)
    remove_tree(tracks_dir(pipeline.settings) / track_id)


def delete_separation(pipeline: Pipeline, user: User | int, job_id: str) -> str:
    """Delete the user's separation ``job_id`` with its stems and files;
    returns its track's id. ``NotFoundError`` for another user's job."""
    with pipeline.db.transaction() as session:
        job = get_job(session, user, job_id)
        user_id, track_id, version, status = job.user_id, job.track_id, job.version, job.status
        session.delete(job)
    pipeline.events.publish(JobEvent.deleted(job_id, user_id, track_id, version + 1))
    _remove_files(pipeline, job_id, status)
    return track_id


def _remove_files(pipeline: Pipeline, job_id: str, status: str) -> None:
    if status == "running":
        # Its worker removes its own staging folder when it stops; pulling it
        # from under the engine would only turn a clean stop into an error.
        remove_tree(job_stems_dir(pipeline.settings, job_id))
    else:
        remove_job_files(pipeline.settings, job_id)
