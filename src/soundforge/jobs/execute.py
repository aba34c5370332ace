"""Running one claimed job in a worker thread, from claim to final state.

The steps, and why they are in this order:

1. **claim** the row (queued → running, atomically); no claim, no work;
2. run the engine with a ``CancelToken`` that the worker's monitor sets when
   the job is cancelled, deleted, taken over, or the worker is stopping;
   progress is written and published at every 10 % step;
3. the engine writes into a staging folder next to ``stems/{job_id}`` and
   moves the files in only when it succeeded;
4. **complete**: one transaction turns the job ``completed`` at 100 % (only if it
   is still ours, still running and not cancelled) and inserts one ``Stem``
   row per file. If that transaction does not happen, the files are removed:
   stems on disk without rows would be invisible and never cleaned up.

Every failure ends the job ``failed`` with the engine's message and code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

from sqlalchemy import Table, insert, select

from soundforge.audio.probe import probe
from soundforge.db.base import utcnow
from soundforge.db.models import JobStatus, ProcessingJob, Stem, Track, UserSettings
from soundforge.engines.base import CancelToken, RunHooks, SeparationResult
from soundforge.errors import CancelledError, InputAudioError, RunnerLostError, SoundForgeError
from soundforge.jobs import state
from soundforge.jobs.engines import EngineSet, account_key_for
from soundforge.jobs.events import JobEvent
from soundforge.jobs.options import options_from_dict
from soundforge.jobs.pipeline import Pipeline
from soundforge.jobs.recorders import NoticeRecorder, ProgressReporter, ProviderWorkRecorder
from soundforge.jobs.releases import UnreleasedRecorder
from soundforge.jobs.retry import after_runner_lost
from soundforge.library.files import job_stems_dir, remove_job_files, remove_tree

log = logging.getLogger(__name__)

# Why a running job's token was set (see JobMonitor).
CANCELLED = "cancelled"  # the user asked
DELETED = "deleted"  # the row is gone (its track was deleted)
LOST = "lost"  # the row is no longer ours (a reconciler took it over)
SHUTDOWN = "shutdown"  # this worker is stopping: hand the job back

_T = cast(Table, ProcessingJob.__table__)


class JobMonitor:
    """The worker's view of its running jobs: their tokens and why one was set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, CancelToken] = {}
        self._reasons: dict[str, str] = {}

    def register(self, job_id: str) -> CancelToken:
        token = CancelToken()
        with self._lock:
            self._tokens[job_id] = token
            self._reasons.pop(job_id, None)
        return token

    def unregister(self, job_id: str) -> None:
        with self._lock:
            self._tokens.pop(job_id, None)
            self._reasons.pop(job_id, None)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def stop(self, job_id: str, reason: str) -> None:
        with self._lock:
            token = self._tokens.get(job_id)
            if token is None:
                return
            # The first reason wins: a job deleted during shutdown stays deleted.
            self._reasons.setdefault(job_id, reason)
        token.cancel()

    def stop_all(self, reason: str) -> None:
        for job_id in self.running():
            self.stop(job_id, reason)

    def reason(self, job_id: str) -> str | None:
        with self._lock:
            return self._reasons.get(job_id)


def run_job(
    pipeline: Pipeline,
    job_id: str,
    worker_id: str,
    monitor: JobMonitor,
    engines: EngineSet,
    on_requeue: Callable[[str], None] | None = None,
) -> str | None:
    """Run ``job_id`` if it can be claimed; returns its final status (None if not claimed)."""
    claimed = state.claim(pipeline, job_id, worker_id)
    if claimed is None:
        log.info("job %s is not queued any more (cancelled, deleted or taken): skipped", job_id)
        return None
    token = monitor.register(job_id)
    log.info("job %s claimed by %s", job_id, worker_id)
    try:
        return _run_claimed(pipeline, job_id, worker_id, token, monitor, engines, on_requeue)
    finally:
        monitor.unregister(job_id)
        # The engine removes its own staging folder; this catches what a crashed
        # runner may have left, unless the job now belongs to another run.
        if _may_clean(pipeline, job_id, worker_id):
            remove_job_files(pipeline.settings, job_id, staging_only=True)


def _may_clean(pipeline: Pipeline, job_id: str, worker_id: str) -> bool:
    """Whether this run may delete the job's files.

    Not when the job has moved on without us: requeued and maybe running on
    another worker (a reconciler took it while our heartbeats were late), or
    completed by that other run. Yes when it is still ours, gone, or ended
    failed/cancelled.
    """
    with pipeline.db.session() as session:
        row = session.execute(
            select(_T.c.status, _T.c.worker_id).where(_T.c.id == job_id)
        ).first()
    if row is None:
        return True
    if row.status == JobStatus.RUNNING.value:
        return bool(row.worker_id == worker_id)
    return row.status in (JobStatus.FAILED.value, JobStatus.CANCELLED.value)


def _discard(pipeline: Pipeline, job_id: str, worker_id: str, destination: Path) -> None:
    if _may_clean(pipeline, job_id, worker_id):
        remove_tree(destination)


def _run_claimed(
    pipeline: Pipeline,
    job_id: str,
    worker_id: str,
    token: CancelToken,
    monitor: JobMonitor,
    engines: EngineSet,
    on_requeue: Callable[[str], None] | None,
) -> str | None:
    settings = pipeline.settings
    with pipeline.db.session() as session:
        job = session.get(ProcessingJob, job_id)
        track = session.get(Track, job.track_id) if job is not None else None
        if job is None or track is None:
            return None  # deleted between claim and now
        user_settings = session.get(UserSettings, job.user_id)
        api_key = account_key_for(settings, user_settings, job.engine)
        engine_name = job.engine
        owner = job.user_id
        options = options_from_dict(job.options)
        input_path = pipeline.uploads_dir / track.file_path
        # Stored as original.<ext>; at LALAL.AI the file carries the track's name.
        upload_name = f"{track.title}{input_path.suffix}"
    destination = job_stems_dir(settings, job_id)
    reporter = ProgressReporter(pipeline, job_id, worker_id)
    try:
        if not input_path.is_file():
            raise InputAudioError(
                "The track's audio file is missing from the server; delete the track and "
                "upload it again."
            )
        engine = engines.get(engine_name, api_key)
        # Every hook goes to every engine; each calls those it has something for.
        hooks = RunHooks(
            on_notice=NoticeRecorder(pipeline, job_id, worker_id),
            on_provider_work=ProviderWorkRecorder(pipeline, job_id, worker_id),
            on_unreleased=UnreleasedRecorder(pipeline, job_id, owner, api_key or ""),
            upload_name=upload_name,
        )
        result = engine.separate(input_path, options, reporter, token, destination, hooks)
    except CancelledError:
        _discard(pipeline, job_id, worker_id, destination)
        return _after_cancel(pipeline, job_id, worker_id, monitor, on_requeue)
    except RunnerLostError as exc:
        _discard(pipeline, job_id, worker_id, destination)
        if token.cancelled:  # killed because it would not stop: a cancel, not a death
            return _after_cancel(pipeline, job_id, worker_id, monitor, on_requeue)
        return after_runner_lost(pipeline, job_id, worker_id, exc, on_requeue)
    except SoundForgeError as exc:
        _discard(pipeline, job_id, worker_id, destination)
        if token.cancelled:
            return _after_cancel(pipeline, job_id, worker_id, monitor, on_requeue)
        log.info("job %s failed: [%s] %s", job_id, exc.code, exc.message)
        state.fail(pipeline, job_id, worker_id, exc.message, exc.code)
        return JobStatus.FAILED.value
    except Exception as exc:
        _discard(pipeline, job_id, worker_id, destination)
        log.exception("job %s failed unexpectedly", job_id)
        # The engine may be left in a bad state: the next job gets a fresh one.
        engines.discard(engine_name)
        state.fail(
            pipeline,
            job_id,
            worker_id,
            f"The separation failed because of an internal error ({type(exc).__name__}: "
            f"{str(exc)[:300]}). The worker log has the details.",
            "internal_error",
        )
        return JobStatus.FAILED.value
    if token.cancelled:
        _discard(pipeline, job_id, worker_id, destination)
        return _after_cancel(pipeline, job_id, worker_id, monitor, on_requeue)
    return _complete(pipeline, job_id, worker_id, result, options.format, destination)


def _after_cancel(
    pipeline: Pipeline,
    job_id: str,
    worker_id: str,
    monitor: JobMonitor,
    on_requeue: Callable[[str], None] | None,
) -> str | None:
    reason = monitor.reason(job_id)
    if reason == SHUTDOWN:
        event = state.requeue(pipeline, job_id, worker_id, count_attempt=False)
        if event is not None and on_requeue is not None:
            on_requeue(job_id)
        log.info("job %s handed back to the queue (worker stopping)", job_id)
        return JobStatus.QUEUED.value if event is not None else None
    if reason in (DELETED, LOST):
        log.info("job %s stopped: %s", job_id, reason)
        return None
    state.cancelled(pipeline, job_id, worker_id)
    log.info("job %s cancelled", job_id)
    return JobStatus.CANCELLED.value


def _describe_stems(
    stems: dict[str, Path], fmt: str, destination: Path, job_id: str, track_id: str
) -> list[dict[str, object]]:
    rows = []
    for name, path in sorted(stems.items()):
        path = Path(path)
        if path.parent != destination:
            raise SoundForgeError(f"The engine wrote {name} outside the job's folder ({path}).")
        duration = None
        try:
            duration = probe(path).duration or None
        except InputAudioError as exc:
            raise SoundForgeError(f"The engine's {name} stem cannot be read back: {exc}") from None
        rows.append(
            {
                "job_id": job_id,
                "track_id": track_id,
                "stem_type": name,
                "file_path": f"stems/{job_id}/{path.name}",
                "format": path.suffix.lstrip(".") or fmt,
                "size_bytes": path.stat().st_size,
                "duration": duration,
                "created_at": utcnow(),
            }
        )
    return rows


def _complete(
    pipeline: Pipeline,
    job_id: str,
    worker_id: str,
    result: SeparationResult,
    fmt: str,
    destination: Path,
) -> str | None:
    try:
        with pipeline.db.session() as session:
            track_id = session.scalar(select(_T.c.track_id).where(_T.c.id == job_id))
        if track_id is None:
            _discard(pipeline, job_id, worker_id, destination)
            return None
        rows = _describe_stems(result.stems, fmt, destination, job_id, track_id)
        provider_task_ids = list(result.provider_task_ids)
        if not rows:
            raise SoundForgeError("The engine finished without writing any stem.")
        with pipeline.db.transaction() as session:
            event = state.transition_in(
                session,
                job_id,
                [
                    _T.c.status == JobStatus.RUNNING.value,
                    _T.c.worker_id == worker_id,
                    _T.c.cancel_requested.is_(False),
                ],
                {
                    "status": JobStatus.COMPLETED.value,
                    "progress": 100,
                    "finished_at": utcnow(),
                    "worker_id": None,
                    "error_message": None,
                    "error_code": None,
                    **({"provider_task_ids": provider_task_ids} if provider_task_ids else {}),
                },
            )
            if event is not None:
                session.execute(insert(Stem), rows)
    except SoundForgeError as exc:
        _discard(pipeline, job_id, worker_id, destination)
        state.fail(pipeline, job_id, worker_id, exc.message, exc.code)
        return JobStatus.FAILED.value
    except Exception as exc:
        _discard(pipeline, job_id, worker_id, destination)
        log.exception("recording the stems of job %s failed", job_id)
        state.fail(
            pipeline,
            job_id,
            worker_id,
            f"The stems were made but could not be recorded ({type(exc).__name__}: "
            f"{str(exc)[:300]}). Try again.",
            "internal_error",
        )
        return JobStatus.FAILED.value
    if event is None:
        # Cancelled at the last moment, deleted, or no longer ours: keep nothing.
        _discard(pipeline, job_id, worker_id, destination)
        with pipeline.db.session() as session:
            row = session.execute(
                select(_T.c.status, _T.c.worker_id, _T.c.cancel_requested).where(
                    _T.c.id == job_id
                )
            ).first()
        if row is not None and row.status == JobStatus.RUNNING.value and row.worker_id == worker_id:
            state.cancelled(pipeline, job_id, worker_id)
            return JobStatus.CANCELLED.value
        return None
    pipeline.events.publish(event)
    log.info("job %s completed with %d stems", job_id, len(rows))
    return JobStatus.COMPLETED.value


def publish_snapshot(pipeline: Pipeline, job_id: str) -> None:
    """Publish a job's current state (after a change made outside ``state``)."""
    job = state.load_job(pipeline, job_id)
    if job is not None:
        pipeline.events.publish(JobEvent.from_job(job))
