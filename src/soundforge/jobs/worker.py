"""The worker: takes job tasks from the queue and runs them, N at a time.

One ``Worker`` per process (``soundforge worker``, or embedded in
``soundforge serve`` through ``start_embedded_worker``). Inside it:

* ``concurrency`` worker threads (2 by default, the seed's queue concurrency),
  each with its own engines: its own ``LocalEngine`` and so its own warm Demucs
  runner process;
* a monitor thread: every ``SOUNDFORGE_CANCEL_POLL_INTERVAL`` it looks at the
  rows of its running jobs and stops a job that was cancelled, deleted or taken
  over; every ``SOUNDFORGE_HEARTBEAT_INTERVAL`` it stamps their heartbeat;
* a reconciler thread: ``soundforge.jobs.recovery.recover`` at start and every
  ``SOUNDFORGE_RECONCILE_INTERVAL`` (orphans of dead workers, lost tasks), and
  ``collect_garbage`` at start and every ``SOUNDFORGE_GC_INTERVAL`` (files no
  row describes).

Why our own loop rather than Huey's ``Consumer``: the consumer owns the
process's signal handlers (it cannot run inside the web server) and knows
nothing of per-thread engines or of handing a job back on shutdown. Huey still
does what it is good at: storage, task serialisation, execution.

Stopping (SIGTERM, SIGINT, or ``stop()``): no new task is taken, running jobs
are stopped and handed back to the queue (``queued`` again, the attempt not
counted), so another worker continues them at once instead of waiting for a
long separation to finish; runner processes are shut down. A second signal
exits at once (the jobs are then recovered as orphans).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import cast

from sqlalchemy import Table, select

from soundforge.config import Settings, get_settings
from soundforge.db.migrate import upgrade_database
from soundforge.db.models import JobStatus, ProcessingJob
from soundforge.engines.lalalai.ledger import DatabaseUsageLedger
from soundforge.engines.local.device import RunnerPlacement
from soundforge.jobs import recovery, state
from soundforge.jobs.config import PipelineSettings
from soundforge.jobs.engines import EngineSet
from soundforge.jobs.execute import (
    CANCELLED,
    DELETED,
    LOST,
    SHUTDOWN,
    JobMonitor,
    run_job,
)
from soundforge.jobs.pipeline import Pipeline
from soundforge.jobs.releases import release_due
from soundforge.jobs.service import dispatch

log = logging.getLogger(__name__)

_T = cast(Table, ProcessingJob.__table__)


class Worker:
    def __init__(
        self,
        settings: Settings | None = None,
        concurrency: int | None = None,
        *,
        pipeline: Pipeline | None = None,
        config: PipelineSettings | None = None,
    ) -> None:
        self._owns_pipeline = pipeline is None
        self.pipeline = pipeline or Pipeline(settings or get_settings(), config=config)
        self.settings = self.pipeline.settings
        self.config = self.pipeline.config
        self.concurrency = concurrency or self.config.worker_concurrency
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.worker_id = recovery.make_worker_id()
        self.monitor = JobMonitor()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()
        self._started = False

    # --- life cycle -------------------------------------------------------------
    def start(self) -> Worker:
        if self._started:
            return self
        self._started = True
        upgrade_database(self.settings, self.pipeline.db)
        self.pipeline.queue.set_handler(self._handle)
        self._safe_recover()
        log.info("worker %s started with %d threads", self.worker_id, self.concurrency)
        for index in range(self.concurrency):
            self._spawn(self._work_loop, f"soundforge-worker-{index + 1}", index)
        self._spawn(self._monitor_loop, "soundforge-monitor")
        self._spawn(self._reconcile_loop, "soundforge-reconciler")
        return self

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(
            target=target, name=name, args=args, daemon=True  # type: ignore[arg-type]
        )
        thread.start()
        self._threads.append(thread)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking tasks, hand running jobs back, wait for the threads."""
        self._stop.set()
        self.monitor.stop_all(SHUTDOWN)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        if alive:
            log.warning("worker threads still running after %g s: %s", timeout, alive)
        self.pipeline.queue.set_handler(None)
        if self._owns_pipeline and not alive:
            self.pipeline.close()
        log.info("worker %s stopped", self.worker_id)

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (the ``soundforge worker`` command)."""
        signals = 0

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                raise KeyboardInterrupt
            log.info("received %s: stopping", signal.Signals(signum).name)
            self._stop.set()

        previous = {
            sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            while not self._stop.wait(1.0):
                pass
            self.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # --- the work -----------------------------------------------------------------
    def _work_loop(self, slot: int = 0) -> None:
        # Each thread's Demucs runner gets its own GPU (several GPUs) or its own
        # share of the CPU cores: see device.RunnerPlacement.
        engines = EngineSet(
            self.settings,
            DatabaseUsageLedger(self.pipeline.db),
            RunnerPlacement(slot, self.concurrency),
        )
        self._local.engines = engines
        queue = self.pipeline.queue
        try:
            while not self._stop.is_set():
                try:
                    task = queue.dequeue()
                except Exception as exc:
                    log.error("cannot read the queue: %s", exc)
                    self._stop.wait(2.0)
                    continue
                if task is None:
                    if not queue.is_redis:
                        self._stop.wait(self.config.queue_poll_interval)
                    continue
                if self._stop.is_set():
                    # Taken off the queue just as we stop: put it back for another worker.
                    self._resend(*task.args[:1])
                    break
                try:
                    queue.execute(task)
                except Exception:
                    log.exception("task %s failed", task.id)
        finally:
            engines.close()

    def _handle(self, job_id: str) -> None:
        run_job(
            self.pipeline,
            job_id,
            self.worker_id,
            self.monitor,
            self._local.engines,
            on_requeue=self._resend,
        )

    def _resend(self, job_id: str) -> None:
        try:
            dispatch(self.pipeline, job_id, fail_job=False)
        except Exception as exc:  # the reconciler of any worker sends it later
            log.error("could not hand job %s back to the queue: %s", job_id, exc)

    # --- watching running jobs -------------------------------------------------------
    def _monitor_loop(self) -> None:
        last_beat = 0.0
        while not self._stop.wait(self.config.cancel_poll_interval):
            try:
                self.check_running_jobs()
                if time.monotonic() - last_beat >= self.config.heartbeat_interval:
                    last_beat = time.monotonic()
                    self.beat()
            except Exception as exc:
                log.warning("checking running jobs failed: %s", exc)

    def check_running_jobs(self) -> None:
        job_ids = self.monitor.running()
        if not job_ids:
            return
        with self.pipeline.db.session() as session:
            rows = {
                row.id: row
                for row in session.execute(
                    select(_T.c.id, _T.c.status, _T.c.worker_id, _T.c.cancel_requested).where(
                        _T.c.id.in_(job_ids)
                    )
                )
            }
        for job_id in job_ids:
            row = rows.get(job_id)
            if row is None:
                self.monitor.stop(job_id, DELETED)
            elif row.status != JobStatus.RUNNING.value or row.worker_id != self.worker_id:
                self.monitor.stop(job_id, LOST)
            elif row.cancel_requested:
                self.monitor.stop(job_id, CANCELLED)

    def beat(self) -> None:
        job_ids = self.monitor.running()
        owned = state.heartbeat(self.pipeline, self.worker_id, job_ids)
        if set(job_ids) - owned:
            # A job no longer ours (or just finished): the check stops it if still running.
            self.check_running_jobs()

    def _reconcile_loop(self) -> None:
        self._safe_collect_garbage()
        last_gc = time.monotonic()
        while not self._stop.wait(self.config.reconcile_interval):
            self._safe_recover()
            if time.monotonic() - last_gc >= self.config.gc_interval:
                last_gc = time.monotonic()
                self._safe_collect_garbage()

    def _safe_collect_garbage(self) -> None:
        try:
            recovery.collect_garbage(self.pipeline)
        except Exception as exc:
            log.warning("leftover-file sweep failed: %s", exc)

    def _safe_recover(self) -> None:
        try:
            done = recovery.recover(self.pipeline)
        except Exception as exc:
            log.warning("recovery sweep failed: %s", exc)
            return
        if any(done.values()):
            log.info("recovery: %s", {key: value for key, value in done.items() if value})
        try:  # LALAL.AI work a job could not release during an outage
            releases = release_due(self.pipeline)
        except Exception as exc:
            log.warning("releasing LALAL.AI work failed: %s", exc)
            return
        if any(releases.values()):
            log.info("LALAL.AI releases: %s", releases)


def start_embedded_worker(
    settings: Settings | None = None,
    concurrency: int | None = None,
    *,
    pipeline: Pipeline | None = None,
) -> Worker:
    """A worker inside another process (the web server): threads only, no signal
    handlers. Call ``.stop()`` when the host process shuts down."""
    return Worker(settings, concurrency, pipeline=pipeline).start()


def run_worker(settings: Settings | None = None, concurrency: int | None = None) -> None:
    """The ``soundforge worker`` command's body: run until a signal."""
    Worker(settings, concurrency).run()
