"""Every change of a job's state, as one conditional UPDATE.

Each transition names the state it starts from in its WHERE clause (and, for a
running job, the worker that owns it), so two processes racing for the same
job cannot both win: the loser's UPDATE matches no row and it backs off. That
holds the same on SQLite (one writer at a time) and PostgreSQL (row locks).
A transition that changed the row bumps ``version``, commits, then publishes
the new state as a ``JobEvent``.

    queued ──claim──► running ──complete──► completed
      │                 │ ├──fail──────► failed
      │                 │ ├──cancel────► cancelled
      │                 │ └──requeue───► queued   (worker shutdown, or crash + retry)
      └──cancel──► cancelled
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from soundforge.db.base import utcnow
from soundforge.db.models import JobStatus, ProcessingJob
from soundforge.jobs.events import JobEvent
from soundforge.jobs.pipeline import Pipeline
from soundforge.library.files import hide_server_paths

_T = cast(Table, ProcessingJob.__table__)
_EVENT_COLUMNS = (
    _T.c.id, _T.c.user_id, _T.c.track_id, _T.c.status, _T.c.progress, _T.c.version,
    _T.c.error_message, _T.c.error_code, _T.c.updated_at,
)




def transition_in(
    session: Session,
    job_id: str,
    where: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
) -> JobEvent | None:
    """Apply one conditional change inside the caller's transaction; None = no match."""
    now = utcnow()
    statement = (
        update(_T)
        .where(_T.c.id == job_id, *where)
        .values(version=_T.c.version + 1, updated_at=now, **values)
        .returning(*_EVENT_COLUMNS)
    )
    row = session.execute(statement).first()
    return JobEvent.from_job(row) if row is not None else None


def transition(
    pipeline: Pipeline,
    job_id: str,
    where: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
) -> JobEvent | None:
    """``transition_in`` in its own transaction, published after the commit."""
    with pipeline.db.transaction() as session:
        event = transition_in(session, job_id, where, values)
    if event is not None:
        pipeline.events.publish(event)
    return event


def history_with(pipeline: Pipeline, job_id: str, event: str, message: str) -> list[Any]:
    """The job's history plus one entry, for a transition's values. Read just
    before the UPDATE that writes it, which only the row's owner can make."""
    with pipeline.db.session() as session:
        row = session.execute(
            select(_T.c.history, _T.c.attempts).where(_T.c.id == job_id)
        ).first()
    earlier = list(row.history or []) if row is not None else []
    attempt = row.attempts if row is not None else 0
    entry = {"at": utcnow().isoformat(), "attempt": attempt, "event": event,
             "message": hide_server_paths(message, pipeline.settings)}
    return [*earlier, entry]


def _owned(worker_id: str) -> list[ColumnElement[bool]]:
    return [_T.c.status == JobStatus.RUNNING.value, _T.c.worker_id == worker_id]


def claim(pipeline: Pipeline, job_id: str, worker_id: str) -> JobEvent | None:
    """queued → running for ``worker_id``; None when the job is not (or no longer) queued."""
    now = utcnow()
    return transition(
        pipeline,
        job_id,
        [_T.c.status == JobStatus.QUEUED.value, _T.c.cancel_requested.is_(False)],
        {
            "status": JobStatus.RUNNING.value,
            "worker_id": worker_id,
            "heartbeat_at": now,
            "started_at": now,
            "attempts": _T.c.attempts + 1,
            "progress": 0,
            "error_message": None,
            "error_code": None,
            # A new run: the row shows this run's provider work, not a dead one's
            # (recovery released that before sending the retry).
            "provider_task_ids": [],
            "provider_source_id": None,
        },
    )


def record_provider_work(
    pipeline: Pipeline,
    job_id: str,
    worker_id: str,
    task_ids: Sequence[str],
    source_id: str | None,
) -> bool:
    """Store the provider's ids of a running job's work; False when the job is
    no longer this worker's (then the ids are not its business any more).

    No ``version`` bump and no event: nothing a subscriber shows changed, and
    the row is what recovery reads after a crash.
    """
    with pipeline.db.transaction() as session:
        result = cast(
            CursorResult[Any],
            session.execute(
                update(_T)
                .where(_T.c.id == job_id, *_owned(worker_id))
                .values(provider_task_ids=list(task_ids), provider_source_id=source_id)
            ),
        )
        return bool(result.rowcount)


def set_progress(pipeline: Pipeline, job_id: str, worker_id: str, progress: int) -> JobEvent | None:
    return transition(
        pipeline, job_id, [*_owned(worker_id), _T.c.progress < progress], {"progress": progress}
    )


def note(
    pipeline: Pipeline, job_id: str, worker_id: str, event: str, message: str
) -> JobEvent | None:
    """One entry in a running job's history (while it is still ours)."""
    history = history_with(pipeline, job_id, event, message)
    return transition(pipeline, job_id, _owned(worker_id), {"history": history})


def fail(
    pipeline: Pipeline, job_id: str, worker_id: str, message: str, code: str,
    history: list[Any] | None = None,
) -> JobEvent | None:
    values: dict[str, Any] = {
        "status": JobStatus.FAILED.value,
        # The row is what API clients and pages read: no server paths in it.
        "error_message": hide_server_paths(message, pipeline.settings),
        "error_code": code,
        "finished_at": utcnow(),
        "worker_id": None,
    }
    if history is not None:
        values["history"] = history
    return transition(pipeline, job_id, _owned(worker_id), values)


def cancelled(pipeline: Pipeline, job_id: str, worker_id: str) -> JobEvent | None:
    return transition(
        pipeline,
        job_id,
        _owned(worker_id),
        {
            "status": JobStatus.CANCELLED.value,
            "error_message": "The separation was cancelled.",
            "error_code": "cancelled",
            "finished_at": utcnow(),
            "worker_id": None,
        },
    )


def requeue(
    pipeline: Pipeline, job_id: str, worker_id: str, count_attempt: bool,
    history: list[Any] | None = None,
) -> JobEvent | None:
    """running → queued (the caller then sends a new task).

    A worker that stops on purpose hands its job back without using up an
    attempt; a crash retry counts (``count_attempt``), so a job that kills
    its worker every time ends ``failed`` instead of looping forever.
    """
    values: dict[str, Any] = {
        "status": JobStatus.QUEUED.value,
        "worker_id": None,
        "heartbeat_at": None,
        "progress": 0,
        "dispatched_at": None,
    }
    if not count_attempt:
        values["attempts"] = _T.c.attempts - 1
    if history is not None:
        values["history"] = history
    return transition(pipeline, job_id, _owned(worker_id), values)


def cancel_queued(pipeline: Pipeline, job_id: str) -> JobEvent | None:
    return transition(
        pipeline,
        job_id,
        [_T.c.status == JobStatus.QUEUED.value],
        {
            "status": JobStatus.CANCELLED.value,
            "cancel_requested": True,
            "error_message": "The separation was cancelled before it started.",
            "error_code": "cancelled",
            "finished_at": utcnow(),
        },
    )


def request_cancel(pipeline: Pipeline, job_id: str) -> bool:
    """Flag a running job; its worker sees the flag within a poll interval and stops it."""
    with pipeline.db.transaction() as session:
        result = cast(
            CursorResult[Any],
            session.execute(
                update(_T)
                .where(_T.c.id == job_id, _T.c.status == JobStatus.RUNNING.value)
                .values(cancel_requested=True)
            ),
        )
        return bool(result.rowcount)


def mark_dispatched(pipeline: Pipeline, job_id: str) -> None:
    with pipeline.db.transaction() as session:
        session.execute(
            update(_T)
            .where(_T.c.id == job_id, _T.c.status == JobStatus.QUEUED.value)
            .values(dispatched_at=utcnow())
        )


def heartbeat(pipeline: Pipeline, worker_id: str, job_ids: Sequence[str]) -> set[str]:
    """Refresh the heartbeat of the worker's running jobs; returns those still its own."""
    if not job_ids:
        return set()
    with pipeline.db.transaction() as session:
        rows = session.execute(
            update(_T)
            .where(_T.c.id.in_(list(job_ids)), *_owned(worker_id))
            .values(heartbeat_at=utcnow())
            .returning(_T.c.id)
        ).all()
    return {row.id for row in rows}


def load_job(pipeline: Pipeline, job_id: str) -> ProcessingJob | None:
    with pipeline.db.session() as session:
        return session.scalar(select(ProcessingJob).where(ProcessingJob.id == job_id))
