"""Ownership: every lookup is scoped to the user asking.

Another user's id answers exactly like an id that does not exist (404), so
ids cannot be probed. Ids arrive as strings from URLs; a malformed one is a
plain 404 too.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from soundforge.db import ProcessingJob, Stem, Track, User
from soundforge.db.base import is_row_id, is_uuid
from soundforge.web.errors import NotFound


def owned_track(session: Session, user: User, track_id: str) -> Track:
    track = session.get(Track, track_id) if is_uuid(track_id) else None
    if track is None or track.user_id != user.id:
        raise NotFound("track")
    return track


def owned_job(session: Session, user: User, job_id: str) -> ProcessingJob:
    job = session.get(ProcessingJob, job_id) if is_uuid(job_id) else None
    if job is None or job.user_id != user.id:
        raise NotFound("separation")
    return job


def owned_stem(session: Session, user: User, stem_id: int) -> Stem:
    if not is_row_id(stem_id):
        raise NotFound("stem")
    stem = session.scalar(
        select(Stem)
        .join(ProcessingJob, ProcessingJob.id == Stem.job_id)
        .where(Stem.id == stem_id, ProcessingJob.user_id == user.id)
    )
    if stem is None:
        raise NotFound("stem")
    return stem


def resolve_upload(uploads_dir: Path, relative: str) -> Path:
    """An absolute path for a stored relative path, refused if it leaves ``uploads/``.

    Paths come from our own rows, never from the URL; this is the second lock
    on the door (a corrupted or hand-edited row must not serve /etc/passwd).
    """
    root = uploads_dir.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise NotFound("file")
    if not candidate.is_file():
        raise NotFound("file")
    return candidate
