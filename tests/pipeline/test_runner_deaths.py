"""A Demucs runner killed mid-job (as the kernel's OOM killer does: the runner
holds the model) is treated like a dead worker: the job is retried within its
attempts, with the cause in its history, and fails naming memory when the
runner dies on every try."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from soundforge.jobs import create_separation_job
from tests.pipeline.conftest import staging_dirs, wait_final, wait_for, wait_status

LONG = 30.0  # tens of segments of the tiny model: time to act mid-run


def runner_of(worker_pid: int) -> int | None:
    """The pid of the worker's Demucs runner process, if it has one now."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("PPid:"))
        if ppid == worker_pid and b"soundforge.engines.local.runner" in cmdline:
            return int(entry.name)
    return None


def kill_runner_mid_job(pipeline, job_id: str, worker_pid: int, attempt: int) -> None:
    def running_again():
        job = wait_status(pipeline, job_id, "running", min_progress=10)
        return job if job.attempts == attempt else None

    wait_for(running_again, f"attempt {attempt} to be under way")
    pid = wait_for(lambda: runner_of(worker_pid), "the runner process")
    os.kill(pid, signal.SIGKILL)


def test_a_killed_runner_is_retried_and_the_cause_is_kept(
    pipeline, user, make_track, shared_worker
) -> None:
    # The runner's death is what this test is about: the shared worker's own
    # runner is killed, and the worker (a real process, like any other) must
    # carry on, as it must for every job it serves after this one.
    worker = shared_worker
    job = create_separation_job(pipeline, user, make_track(seconds=LONG), {"stems": "vocals"})
    kill_runner_mid_job(pipeline, job.id, worker.pid, attempt=1)
    done = wait_final(pipeline, job.id)
    assert done.status == "completed", done.error_message
    assert done.attempts == 2
    assert [entry["event"] for entry in done.history] == ["runner_lost"]
    assert done.history[0]["attempt"] == 1
    assert "SIGKILL" in done.history[0]["message"]
    assert str(pipeline.settings.data_dir) not in done.history[0]["message"]
    assert staging_dirs(pipeline) == []
    assert worker.alive()  # the worker itself carried on


def test_a_runner_killed_on_every_try_fails_naming_memory(
    pipeline, user, make_track, start_worker
) -> None:
    worker = start_worker(SOUNDFORGE_JOB_MAX_ATTEMPTS="2")
    job = create_separation_job(pipeline, user, make_track(seconds=LONG), {"stems": "vocals"})
    kill_runner_mid_job(pipeline, job.id, worker.pid, attempt=1)
    kill_runner_mid_job(pipeline, job.id, worker.pid, attempt=2)
    done = wait_final(pipeline, job.id)
    assert done.status == "failed"
    assert done.error_code == "runner_lost"
    assert "memory" in done.error_message and "2 attempt" in done.error_message
    assert [entry["attempt"] for entry in done.history] == [1, 2]
    assert staging_dirs(pipeline) == []
    assert not (pipeline.stems_dir / job.id).exists()
