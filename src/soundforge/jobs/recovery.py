"""Recovery: nothing stays ``running`` without a live worker, nothing ``queued`` without a task.

Every worker runs ``recover`` when it starts and every
``SOUNDFORGE_RECONCILE_INTERVAL`` seconds after. Several workers may run it at
once: each change is a conditional UPDATE, so only one of them acts on a job.

**Orphans** (``running`` jobs whose worker is gone). A worker's id is
``host/boot/pid/start-time``. A worker on the same machine (same host name and
boot) whose process no longer exists, or is another process that reused the pid,
is dead *now*, so its jobs are recovered at once. A worker elsewhere is dead
when its heartbeat is older than ``SOUNDFORGE_ORPHAN_TIMEOUT``. An orphan is:

* ``cancelled`` if the user had asked for it;
* put back to ``queued`` with a new task if it has attempts left
  (``SOUNDFORGE_JOB_MAX_ATTEMPTS``, 2 by default: one retry);
* ``failed`` otherwise, saying its worker stopped unexpectedly and how often.

Its half-written files go in every case: the staging folders the dead run left
(``stems/.staging-{job_id}-*``) and a ``stems/{job_id}`` folder the run may have
been moving files into when it died; neither ever had ``Stem`` rows, because
those are only written with ``completed``.

A LALAL.AI orphan's provider work goes too: the run recorded its task ids and
uploaded file on the row as they came to exist, so the winner cancels those
tasks and deletes that file at the provider (best effort, with the key the job
used), says so in the log and, for a job that ends here, in its message; and
only then sends the retry's task.

**Lost tasks** (``queued`` jobs with no task): if the queue holds no task for a
queued job and the last one was sent more than ``SOUNDFORGE_REDISPATCH_AFTER``
seconds ago (or never), a new one is sent. A duplicate is harmless (the claim
lets only one run).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import cast

import psutil
from sqlalchemy import Table, and_, or_, select

from soundforge.db.base import utcnow
from soundforge.db.models import FINAL_STATUSES, JobStatus, ProcessingJob, Track, UserSettings
from soundforge.engines.lalalai.release import release_provider_work
from soundforge.jobs import state
from soundforge.jobs.engines import account_key_for
from soundforge.jobs.pipeline import Pipeline
from soundforge.jobs.releases import record_unreleased
from soundforge.jobs.service import dispatch
from soundforge.library.files import remove_job_files, remove_tree
from soundforge.storage.staging import STAGING_PREFIX
from soundforge.storage.temporary import sweep_temporary_files

log = logging.getLogger(__name__)

_T = cast(Table, ProcessingJob.__table__)
FINAL_VALUES = frozenset(status.value for status in FINAL_STATUSES)


@cache
def boot_id() -> str:
    """Changes at every boot of the machine (so a pid from before a reboot is not trusted)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip().replace("-", "")[:12]
    except OSError:
        return f"{int(psutil.boot_time())}"


def process_token(pid: int) -> str | None:
    """The start time of ``pid`` (tells a live worker from a process that reused its pid)."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def make_worker_id(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{socket.gethostname()}/{boot_id()}/{pid}/{process_token(pid)}"


def local_worker_alive(worker_id: str) -> bool | None:
    """True/False for a worker of this machine (this boot); None when it runs elsewhere."""
    try:
        host, boot, pid_text, token = worker_id.rsplit("/", 3)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname() or boot != boot_id():
        return None
    return process_token(pid) == token


@dataclass(frozen=True)
class Orphan:
    job_id: str
    worker_id: str | None
    attempts: int
    cancel_requested: bool
    reason: str


def find_orphans(pipeline: Pipeline, now: datetime | None = None) -> list[Orphan]:
    now = now or utcnow()
    stale_before = now - timedelta(seconds=pipeline.config.orphan_timeout)
    with pipeline.db.session() as session:
        rows = session.execute(
            select(
                _T.c.id, _T.c.worker_id, _T.c.heartbeat_at, _T.c.attempts, _T.c.cancel_requested
            ).where(_T.c.status == JobStatus.RUNNING.value)
        ).all()
    orphans = []
    for row in rows:
        alive = local_worker_alive(row.worker_id) if row.worker_id else False
        if alive is False:
            reason = "its worker process is gone"
        elif alive is None and (row.heartbeat_at is None or row.heartbeat_at < stale_before):
            reason = (
                f"its worker ({row.worker_id}) sent no heartbeat for more than "
                f"{pipeline.config.orphan_timeout:g} s"
            )
        else:
            continue
        orphans.append(
            Orphan(row.id, row.worker_id, row.attempts, bool(row.cancel_requested), reason)
        )
    return orphans


def recover_orphan(pipeline: Pipeline, orphan: Orphan) -> str | None:
    """Retry, fail or cancel one orphan; returns the status it was given (None: raced)."""
    owned = [
        _T.c.status == JobStatus.RUNNING.value,
        _T.c.worker_id == orphan.worker_id if orphan.worker_id else _T.c.worker_id.is_(None),
    ]
    max_attempts = pipeline.config.job_max_attempts
    if orphan.cancel_requested:
        status, values = JobStatus.CANCELLED, {
            "error_message": "The separation was cancelled.",
            "error_code": "cancelled",
            "finished_at": utcnow(),
        }
    elif orphan.attempts < max_attempts:
        status, values = JobStatus.QUEUED, {
            "progress": 0,
            "heartbeat_at": None,
            # Stamped now so no reconciler sends a task before the files are cleaned.
            "dispatched_at": utcnow(),
        }
    else:
        status, values = JobStatus.FAILED, {
            "error_message": (
                f"The separation stopped because {orphan.reason} (attempt {orphan.attempts} "
                f"of {max_attempts}). The worker may have run out of memory or been "
                "restarted; try again, and check the worker's log if it happens again."
            ),
            "error_code": "worker_lost",
            "finished_at": utcnow(),
        }
    if not orphan.cancel_requested:
        values["history"] = state.history_with(
            pipeline, orphan.job_id, "worker_lost",
            f"The worker stopped mid-job: {orphan.reason}.",
        )
    event = state.transition(
        pipeline, orphan.job_id, owned, {"status": status.value, "worker_id": None, **values}
    )
    if event is None:
        return None  # another reconciler got there first; the files are its business
    # Only the winner cleans, and before the retry's task is sent: the dead run's
    # staging folders and a stems folder it may have been moving files into
    # (never described by rows: those come only with "completed").
    remove_job_files(pipeline.settings, orphan.job_id)
    log.warning("job %s recovered (%s): %s", orphan.job_id, orphan.reason, status.value)
    note = release_orphan_work(pipeline, orphan.job_id)
    if note and status is not JobStatus.QUEUED:
        # The job ends here: its message is where the user looks. (A retried
        # job's message is reset by its next claim, so the log has it.)
        state.transition(
            pipeline,
            orphan.job_id,
            [_T.c.status == status.value, _T.c.version == event.version],
            {"error_message": f"{values['error_message']} {note}"},
        )
    if status is JobStatus.QUEUED:
        try:
            dispatch(pipeline, orphan.job_id, fail_job=False)
        except Exception as exc:  # still queued: the next sweep sends it
            log.error("could not requeue job %s: %s", orphan.job_id, exc)
    return status.value


def release_orphan_work(pipeline: Pipeline, job_id: str) -> str:
    """Cancel a dead run's LALAL.AI tasks and delete its upload; returns what
    happened in words ("" when the job had nothing at the provider).

    Called by the reconciler that won the orphan, after its UPDATE and before
    the retry is sent: nobody owns the row now, so the ids read here are final
    and the retry's claim (which clears them) cannot have happened yet.
    """
    with pipeline.db.session() as session:
        job = session.get(ProcessingJob, job_id)
        if job is None:
            return ""
        task_ids = [str(task_id) for task_id in job.provider_task_ids or []]
        source_id = job.provider_source_id
        if not task_ids and not source_id:
            return ""
        user_id = job.user_id
        try:
            # The same precedence the job used: the owner's own key, else the
            # installation's.
            api_key = account_key_for(
                pipeline.settings, session.get(UserSettings, job.user_id), job.engine
            )
        except Exception as exc:  # e.g. a stored key the current secret cannot read
            api_key = None
            log.warning("job %s: cannot read its owner's LALAL.AI key: %s", job_id, exc)
    outcome = release_provider_work(pipeline.settings, api_key, task_ids, source_id)
    if api_key is not None and (outcome.retry_tasks or outcome.retry_source):
        # The provider is down: the work is released once it answers again.
        record_unreleased(pipeline, job_id, user_id, api_key, outcome.retry_tasks,
                          outcome.retry_source, "; ".join(outcome.errors))
    note = outcome.summary()
    log.warning(
        "job %s: the stopped run's LALAL.AI work (tasks %s, source %s): %s",
        job_id, ", ".join(task_ids) or "none", source_id or "none", note,
    )
    return note


def redispatch_lost(pipeline: Pipeline, now: datetime | None = None) -> list[str]:
    """Send a new task for every queued job that has none; returns their ids."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=pipeline.config.redispatch_after)
    with pipeline.db.session() as session:
        candidates = list(
            session.scalars(
                select(_T.c.id).where(
                    _T.c.status == JobStatus.QUEUED.value,
                    _T.c.cancel_requested.is_(False),
                    or_(
                        and_(_T.c.dispatched_at.is_(None), _T.c.created_at < cutoff),
                        _T.c.dispatched_at < cutoff,
                    ),
                )
            ).all()
        )
    if not candidates:
        return []
    pending = pipeline.queue.pending_job_ids()
    sent = []
    for job_id in candidates:
        if job_id in pending:
            continue
        try:
            dispatch(pipeline, job_id, fail_job=False)
        except Exception as exc:
            log.error("could not re-send job %s: %s", job_id, exc)
            continue
        log.warning("job %s was queued without a task: task sent again", job_id)
        sent.append(job_id)
    return sent


def collect_garbage(pipeline: Pipeline, min_age: float | None = None) -> list[Path]:
    """Remove files no row describes, left by a process that died at a bad moment.

    * ``stems/{job_id}/`` of a job that no longer exists (a failed delete, a
      reuse whose row was never written);
    * ``stems/.staging-{job_id}-*`` of a job that is gone or over (a web process
      killed while linking reused stems; runs recover their own);
    * ``tracks/.staging-*`` (an import killed half-way) and ``tracks/{id}/`` of
      a track that no longer exists;
    * temporary files: uploads in ``uploads/.incoming`` and half-written small
      files (``storage.temporary``).

    Only entries older than ``min_age`` seconds are considered, so work that
    is just starting (a folder created a moment before its row) is never taken.
    """
    age = pipeline.config.gc_min_age if min_age is None else min_age
    cutoff = time.time() - age
    removed: list[Path] = []

    def old_entries(folder: Path) -> list[Path]:
        try:
            return [entry for entry in folder.iterdir() if entry.lstat().st_mtime < cutoff]
        except FileNotFoundError:
            return []

    stems = old_entries(pipeline.stems_dir)
    ids = sorted({job_id for entry in stems if (job_id := _job_id_of(entry)) is not None})
    with pipeline.db.session() as session:
        states: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            states.update(
                session.execute(select(_T.c.id, _T.c.status).where(_T.c.id.in_(chunk))).all()
            )
    for entry in stems:
        job_id = _job_id_of(entry)
        if job_id is None:
            continue
        status = states.get(job_id)
        staging = entry.name.startswith(STAGING_PREFIX)
        if status is None or (staging and status in FINAL_VALUES):
            remove_tree(entry)
            removed.append(entry)

    tracks = old_entries(pipeline.tracks_dir)
    track_ids = [entry.name for entry in tracks if not entry.name.startswith(STAGING_PREFIX)]
    with pipeline.db.session() as session:
        existing: set[str] = set()
        for start in range(0, len(track_ids), 500):
            names = track_ids[start : start + 500]
            existing.update(session.scalars(select(Track.id).where(Track.id.in_(names))))
    for entry in tracks:
        if entry.name.startswith(STAGING_PREFIX) or entry.name not in existing:
            remove_tree(entry)
            removed.append(entry)
    if removed:
        log.warning("removed %d leftover file(s)/folder(s): %s", len(removed),
                    ", ".join(str(path) for path in removed[:10]))
    # Uploads being imported, small files being replaced: no row describes them.
    removed += sweep_temporary_files(pipeline.settings.data_dir, age)
    return removed


def _job_id_of(entry: Path) -> str | None:
    name = entry.name
    if name.startswith(STAGING_PREFIX):
        name = name[len(STAGING_PREFIX):]
    candidate = name[:36]
    try:
        uuid.UUID(candidate)
    except ValueError:
        return None
    return candidate


def recover(pipeline: Pipeline) -> dict[str, list[str]]:
    """One sweep: orphans, then lost tasks. Returns what was done, for logs and tests."""
    done: dict[str, list[str]] = {"requeued": [], "failed": [], "cancelled": [], "redispatched": []}
    for orphan in find_orphans(pipeline):
        status = recover_orphan(pipeline, orphan)
        if status == JobStatus.QUEUED.value:
            done["requeued"].append(orphan.job_id)
        elif status is not None:
            done[status].append(orphan.job_id)
    done["redispatched"] = redispatch_lost(pipeline)
    return done
