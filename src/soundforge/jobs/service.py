"""Creating, finding and cancelling separation jobs: the web app's entry points.

``create_separation_job`` is the seed's ``Jobs.Processing.create_separation_job/3``.
Its one-unit guarantee ("no row without a queued task, no task without a row")
is kept by *enqueue after commit* plus a reconciler, not by an outbox table:

1. the row is committed first (status ``queued``); a task can therefore never
   point at a row that does not exist — a worker given a job id with no row (the
   track was deleted since) finds nothing to claim and drops it;
2. the task is sent right after the commit, and ``dispatched_at`` is stamped;
3. if sending fails (queue unreachable), the row is turned ``failed`` with
   that reason at once and the error is raised to the caller: no ``queued``
   row is left without a task;
4. if the process dies between 1 and 2, the row stays ``queued`` with no task;
   every worker's reconciler re-sends a task for a queued job that has none in
   the queue (``soundforge.jobs.recovery``).

Sending a task twice is harmless, because running a job starts with an atomic
claim of its row. An outbox table would give the same guarantee with one more
table and a relay process; the row *is* the outbox here, since the queue
carries nothing but the row's id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from soundforge.db.accounts import user_id_of
from soundforge.db.base import is_row_id, is_uuid, new_uuid, utcnow
from soundforge.db.models import (
    ACTIVE_STATUSES,
    JobStatus,
    ProcessingJob,
    Stem,
    User,
    UserSettings,
)
from soundforge.engines.base import SeparationOptions
from soundforge.errors import InputAudioError, InvalidOptionError, NotFoundError, SoundForgeError
from soundforge.jobs import state
from soundforge.jobs.engines import account_key_for, check_request
from soundforge.jobs.events import JobEvent
from soundforge.jobs.options import build_request, job_model, options_key, options_to_dict
from soundforge.jobs.pipeline import Pipeline
from soundforge.library.files import job_stems_dir, link_or_copy, remove_tree, resolve_upload
from soundforge.library.tracks import get_track
from soundforge.storage.staging import staging_for

log = logging.getLogger(__name__)

_ACTIVE = [status.value for status in ACTIVE_STATUSES]


class QueueUnavailableError(SoundForgeError):
    """The job queue (Redis, or the SQLite queue file) cannot be reached."""

    code = "queue_unavailable"


def _active_job(session: Session, track_id: str, key: str) -> ProcessingJob | None:
    return session.scalar(
        select(ProcessingJob)
        .options(selectinload(ProcessingJob.stems))
        .where(
            ProcessingJob.track_id == track_id,
            ProcessingJob.options_key == key,
            ProcessingJob.status.in_(_ACTIVE),
        )
    )


def create_separation_job(
    pipeline: Pipeline,
    user: User | int,
    track: Any,
    options: Mapping[str, Any] | SeparationOptions | None = None,
    *,
    engine: str | None = None,
    force: bool = False,
) -> ProcessingJob:
    """Create a job separating ``track`` (a ``Track`` or its id) for ``user`` and queue it.

    ``options`` overrides the user's settings: any ``SeparationOptions`` field
    (``model``, ``stems``, ``two_stems``, ``format``, ``preview`` …) and
    ``engine``, as a mapping (form or JSON values are fine) or a
    ``SeparationOptions``. Everything is validated before anything is written:
    an unknown model or stem, a missing LALAL.AI key or too few LALAL.AI minutes
    raise a ``SoundForgeError`` with a message for the user.

    Returns the job, which is one of:

    * the queued or running job already doing exactly this (a double click);
    * unless ``force``, a job ``completed`` at once with copies of the stems of
      an earlier identical separation of the same audio (same content hash, same
      engine, model and output options) by the same user;
    * a new ``queued`` job, whose task is in the queue.
    """
    user_id = user_id_of(user)
    track_id = track if isinstance(track, str) else track.id
    settings = pipeline.settings
    with pipeline.db.session() as session:
        row = get_track(session, user_id, track_id)
        user_settings = session.get(UserSettings, user_id)
        engine_name, request = build_request(user_settings, options, engine)
        api_key = account_key_for(settings, user_settings, engine_name)
        content_hash, duration = row.content_hash, row.duration
        audio_path = pipeline.uploads_dir / row.file_path
    if not audio_path.is_file():
        raise InputAudioError(
            f"The audio file of this track is missing from the server ({row.file_path}). "
            "Delete the track and upload it again."
        )
    request = check_request(settings, engine_name, request, api_key=api_key, duration=duration)
    key = options_key(engine_name, request)

    with pipeline.db.session() as session:
        existing = _active_job(session, track_id, key)
        if existing is not None:
            return existing
        if not force:
            source = _reusable_job(pipeline, session, user_id, content_hash, key)
            if source is not None:
                reused = _reuse(pipeline, source, track_id)
                if reused is not None:
                    return reused

    job = ProcessingJob(
        id=new_uuid(),
        user_id=user_id,
        track_id=track_id,
        engine=engine_name,
        model=job_model(engine_name, request),
        options=options_to_dict(request),
        options_key=key,
        content_hash=content_hash,
        status=JobStatus.QUEUED.value,
        progress=0,
        provider_task_ids=[],
    )
    job.stems = []
    try:
        with pipeline.db.transaction() as session:
            session.add(job)
    except IntegrityError:
        # Another request created the same job between our check and insert.
        with pipeline.db.session() as session:
            existing = _active_job(session, track_id, key)
        if existing is not None:
            return existing
        raise
    pipeline.events.publish(JobEvent.from_job(job))
    dispatch(pipeline, job.id)
    return job


def dispatch(pipeline: Pipeline, job_id: str, *, fail_job: bool = True) -> None:
    """Send the task for a committed queued job.

    If the queue cannot be reached, the job is marked ``failed`` with that reason
    (``fail_job``, for a new job the user is waiting on) and
    ``QueueUnavailableError`` is raised; the reconciler passes ``fail_job=False``
    and simply tries again at its next sweep.
    """
    try:
        pipeline.queue.enqueue(job_id)
    except Exception as exc:
        log.error("could not enqueue job %s: %s", job_id, exc)
        if not fail_job:
            raise QueueUnavailableError(str(exc)) from None
        message = (
            "The job queue cannot be reached, so the separation was not started "
            f"({type(exc).__name__}: {str(exc)[:200]}). Check that the queue server "
            "(SOUNDFORGE_QUEUE_URL) is running, then try again."
        )
        state.transition(
            pipeline,
            job_id,
            [ProcessingJob.__table__.c.status == JobStatus.QUEUED.value],
            {
                "status": JobStatus.FAILED.value,
                "error_message": message,
                "error_code": QueueUnavailableError.code,
                "finished_at": utcnow(),
            },
        )
        raise QueueUnavailableError(message) from None
    state.mark_dispatched(pipeline, job_id)


# --- reuse of finished work -------------------------------------------------------
def _reusable_job(
    pipeline: Pipeline, session: Session, user_id: int, content_hash: str, key: str
) -> ProcessingJob | None:
    """The newest completed identical job of this user whose stem files are all there."""
    candidates = session.scalars(
        select(ProcessingJob)
        .options(selectinload(ProcessingJob.stems))
        .where(
            ProcessingJob.user_id == user_id,
            ProcessingJob.content_hash == content_hash,
            ProcessingJob.options_key == key,
            ProcessingJob.status == JobStatus.COMPLETED.value,
        )
        .order_by(ProcessingJob.finished_at.desc())
        .limit(5)
    ).all()
    for job in candidates:
        if job.stems and all(
            (pipeline.uploads_dir / stem.file_path).is_file() for stem in job.stems
        ):
            return job
    return None


def _reuse(pipeline: Pipeline, source: ProcessingJob, track_id: str) -> ProcessingJob | None:
    """A completed job for ``track_id`` holding links to ``source``'s stems.

    Each job owns its own files (hard links: no extra space), so deleting the
    source's track later does not take these stems away.
    """
    job_id = new_uuid()
    destination = job_stems_dir(pipeline.settings, job_id)
    try:
        with staging_for(destination) as staging:
            for stem in source.stems:
                src = pipeline.uploads_dir / stem.file_path
                link_or_copy(src, staging.file(src.name))
            moved = staging.commit()
    except (OSError, SoundForgeError) as exc:
        log.warning("could not reuse the stems of job %s: %s", source.id, exc)
        remove_tree(destination)
        return None
    now = utcnow()
    job = ProcessingJob(
        id=job_id,
        user_id=source.user_id,
        track_id=track_id,
        engine=source.engine,
        model=source.model,
        options=dict(source.options),
        options_key=source.options_key,
        content_hash=source.content_hash,
        status=JobStatus.COMPLETED.value,
        progress=100,
        provider_task_ids=[],
        reused_from_job_id=source.id,
        started_at=now,
        finished_at=now,
    )
    job.stems = [
        Stem(
            job_id=job_id,
            track_id=track_id,
            stem_type=stem.stem_type,
            file_path=f"stems/{job_id}/{moved[(pipeline.uploads_dir / stem.file_path).name].name}",
            format=stem.format,
            size_bytes=stem.size_bytes,
            duration=stem.duration,
        )
        for stem in source.stems
    ]
    try:
        with pipeline.db.transaction() as session:
            session.add(job)
    except Exception:
        remove_tree(destination)
        raise
    pipeline.events.publish(JobEvent.from_job(job))
    return job


# --- reading ---------------------------------------------------------------------
def get_job(session: Session, user: User | int, job_id: str) -> ProcessingJob:
    """The user's job with its stems loaded, or NotFoundError (also for another user's)."""
    if not is_uuid(job_id):
        raise NotFoundError.of("separation")
    job = session.scalar(
        select(ProcessingJob)
        .options(selectinload(ProcessingJob.stems))
        .where(ProcessingJob.id == job_id, ProcessingJob.user_id == user_id_of(user))
    )
    if job is None:
        raise NotFoundError.of("separation")
    return job


def list_jobs(
    session: Session,
    user: User | int,
    *,
    track_id: str | None = None,
    statuses: Sequence[str] | None = None,
    limit: int = 100,
) -> list[ProcessingJob]:
    """The user's jobs, newest first, with their stems loaded."""
    query = (
        select(ProcessingJob)
        .options(selectinload(ProcessingJob.stems))
        .where(ProcessingJob.user_id == user_id_of(user))
    )
    if track_id is not None:
        query = query.where(ProcessingJob.track_id == track_id)
    if statuses:
        unknown = sorted(set(statuses) - {status.value for status in JobStatus})
        if unknown:
            # A typo must not read as "you have no such jobs".
            raise InvalidOptionError(
                f"Unknown job status {', '.join(map(repr, unknown))}: use "
                f"{', '.join(status.value for status in JobStatus)} (comma-separated)."
            )
        query = query.where(ProcessingJob.status.in_(list(statuses)))
    query = query.order_by(ProcessingJob.created_at.desc()).limit(limit)
    return list(session.scalars(query).all())


def get_stem(session: Session, user: User | int, stem_id: int) -> Stem:
    if not is_row_id(stem_id):
        raise NotFoundError.of("stem")
    stem = session.scalar(
        select(Stem)
        .join(ProcessingJob, ProcessingJob.id == Stem.job_id)
        .where(Stem.id == stem_id, ProcessingJob.user_id == user_id_of(user))
    )
    if stem is None:
        raise NotFoundError.of("stem")
    return stem


def stem_path(pipeline: Pipeline, stem: Stem) -> Any:
    """The stem's file on disk (NotFoundError if it is gone)."""
    return resolve_upload(pipeline.settings, stem.file_path)


# --- cancelling ---------------------------------------------------------------------
def cancel_job(pipeline: Pipeline, user: User | int, job_id: str) -> ProcessingJob:
    """Cancel the user's job and return it as it is now.

    A queued job is ``cancelled`` at once and will never run. A running job is
    flagged; its worker stops the engine (the Demucs runner, or the LALAL.AI
    task) within ``SOUNDFORGE_CANCEL_POLL_INTERVAL`` and marks it ``cancelled``,
    keeping nothing. A finished job is returned unchanged.
    """
    with pipeline.db.session() as session:
        job = get_job(session, user, job_id)
    if job.status == JobStatus.QUEUED.value and state.cancel_queued(pipeline, job.id) is None:
        # It was claimed in the meantime: cancel it as a running job.
        state.request_cancel(pipeline, job.id)
    elif job.status == JobStatus.RUNNING.value:
        state.request_cancel(pipeline, job.id)
    with pipeline.db.session() as session:
        return get_job(session, user, job_id)


def cancel_user_jobs(
    pipeline: Pipeline, user: User | int, engine: str | None = None
) -> list[str]:
    """Cancel every queued or running job of the user (of one engine if given);
    returns their ids (the web app's "cancel all")."""
    with pipeline.db.session() as session:
        query = select(ProcessingJob.id).where(
            ProcessingJob.user_id == user_id_of(user), ProcessingJob.status.in_(_ACTIVE)
        )
        if engine is not None:
            query = query.where(ProcessingJob.engine == engine)
        ids = list(session.scalars(query).all())
    for job_id in ids:
        cancel_job(pipeline, user, job_id)
    return ids
