"""Worker processes running jobs end to end, and every way a job can end badly.

All on SQLite and the SQLite queue, with real ``soundforge worker`` processes
running the tiny Demucs models.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading

import pytest
from sqlalchemy import select

from soundforge.db.models import ProcessingJob, Stem
from soundforge.jobs import cancel_job, create_separation_job, get_job
from soundforge.jobs.deletion import delete_track
from soundforge.library.files import resolve_upload
from tests.pipeline.conftest import staging_dirs, wait_final, wait_for, wait_status
from tests.support.events import follow_until_final
from tests.support.tiny_models import build_tiny_repo

# Long enough (tens of segments of the tiny model) that a test can act mid-run.
LONG = 30.0


def _stems_of(pipeline, job_id: str) -> list[Stem]:
    with pipeline.db.session() as session:
        return list(session.scalars(select(Stem).where(Stem.job_id == job_id)).all())


def _files_in(path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_job_completes_with_stem_rows_files_and_live_progress(
    pipeline, user, make_track, start_worker
):
    track = make_track(seconds=6.0)
    job = create_separation_job(pipeline, user, track)
    events = follow_until_final(pipeline.events, [job.id], user.id, then=start_worker)

    done = wait_final(pipeline, job.id)
    assert done.status == "completed", done.error_message
    assert done.progress == 100 and done.attempts == 1 and done.worker_id is None
    assert done.started_at is not None and done.finished_at >= done.started_at
    stems = _stems_of(pipeline, job.id)
    assert sorted(s.stem_type for s in stems) == ["bass", "drums", "other", "vocals"]
    for stem in stems:
        assert stem.file_path == f"stems/{job.id}/{stem.stem_type}.wav"
        path = resolve_upload(pipeline.settings, stem.file_path)
        assert stem.size_bytes == path.stat().st_size > 0
        assert stem.format == "wav"
        assert stem.duration == pytest.approx(6.0, abs=0.05)
        assert stem.track_id == track.id
    assert _files_in(pipeline.stems_dir / job.id) == [
        "bass.wav", "drums.wav", "other.wav", "vocals.wav"
    ]
    assert staging_dirs(pipeline) == []

    statuses = [event.status for event in events]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert "running" in statuses
    running = [event.progress for event in events if event.status == "running"]
    assert running == sorted(running)
    assert all(p % 10 == 0 for p in running), "progress is published in 10 % steps"
    assert events[-1].progress == 100


def test_engine_failures_end_failed_with_the_engine_message(
    pipeline, user, make_track, start_worker, tmp_path
):
    # A model folder holding only htdemucs: asking for mdx_extra (Demucs) or for
    # bs_roformer_vocals (RoFormer, whose files no folder here holds) finds it missing.
    repo = build_tiny_repo(tmp_path / "only-htdemucs", ("htdemucs",))
    worker = start_worker(SOUNDFORGE_MODEL_REPO=repo)
    missing_model = create_separation_job(pipeline, user, make_track(), {"model": "mdx_extra"})
    missing_roformer = create_separation_job(pipeline, user, make_track(),
                                             {"model": "bs_roformer_vocals"})
    corrupt = make_track()
    resolve_upload(pipeline.settings, corrupt.file_path).write_bytes(b"\x00garbage" * 2000)
    bad_input = create_separation_job(pipeline, user, corrupt)
    fine = create_separation_job(pipeline, user, make_track(), {"stems": "vocals"})

    job = wait_final(pipeline, missing_model.id)
    assert job.status == "failed"
    assert job.error_code == "model_unavailable"
    assert "mdx_extra" in job.error_message
    assert "SOUNDFORGE_MODEL_REPO" in job.error_message

    # (Was test_roformer_jobs.py's test of its own worker with an empty model folder.)
    job = wait_final(pipeline, missing_roformer.id)
    assert job.status == "failed" and job.error_code == "model_unavailable"
    assert "soundforge models download bs_roformer_vocals" in (job.error_message or "")

    job = wait_final(pipeline, bad_input.id)
    assert job.status == "failed"
    assert job.error_code == "invalid_input"
    assert "not a readable audio file" in job.error_message

    # The worker is unharmed and carries on.
    assert wait_final(pipeline, fine.id).status == "completed"
    for failed in (missing_model.id, missing_roformer.id, bad_input.id):
        assert _stems_of(pipeline, failed) == []
        assert not (pipeline.stems_dir / failed).exists()
    assert staging_dirs(pipeline) == []
    assert "Traceback" not in worker.log()


def test_engine_timeout_fails_the_job(pipeline, user, make_track, start_worker):
    start_worker(SOUNDFORGE_DEMUCS_MAX_TIME="1")
    job = create_separation_job(pipeline, user, make_track(seconds=LONG))
    done = wait_final(pipeline, job.id)
    assert done.status == "failed"
    assert done.error_code == "timeout"
    assert "SOUNDFORGE_DEMUCS_MAX_TIME" in done.error_message
    assert not (pipeline.stems_dir / job.id).exists()
    assert staging_dirs(pipeline) == []


def test_cancel_running_job_stops_it_and_keeps_nothing(
    pipeline, user, make_track, shared_worker
):
    worker = shared_worker
    job = create_separation_job(pipeline, user, make_track(seconds=LONG))
    wait_status(pipeline, job.id, "running", min_progress=10)
    answer = cancel_job(pipeline, user, job.id)
    assert answer.status in ("running", "cancelled") and answer.cancel_requested

    done = wait_final(pipeline, job.id)
    assert done.status == "cancelled", done.error_message
    assert done.progress < 100
    assert _stems_of(pipeline, job.id) == []
    assert not (pipeline.stems_dir / job.id).exists()
    assert staging_dirs(pipeline) == []
    # Cancelling again changes nothing.
    assert cancel_job(pipeline, user, job.id).status == "cancelled"
    # The worker (and its runner) is free for the next job.
    after = create_separation_job(pipeline, user, make_track(), {"stems": "vocals"})
    assert wait_final(pipeline, after.id).status == "completed"
    assert worker.alive()


def test_deleting_the_track_of_a_running_job_ends_it_cleanly(
    pipeline, user, make_track, shared_worker
):
    worker = shared_worker
    track = make_track(seconds=LONG)
    job = create_separation_job(pipeline, user, track)
    wait_status(pipeline, job.id, "running", min_progress=10)

    delete_track(pipeline, user, track.id)

    with pipeline.db.session() as session:
        assert session.get(ProcessingJob, job.id) is None
    assert not (pipeline.uploads_dir / "tracks" / track.id).exists()
    # The worker notices, stops the engine and removes what it was writing.
    wait_for(lambda: staging_dirs(pipeline) == [], "the job's staging folder to go")
    after = create_separation_job(pipeline, user, make_track(), {"stems": "vocals"})
    assert wait_final(pipeline, after.id).status == "completed"
    assert not (pipeline.stems_dir / job.id).exists()
    assert _stems_of(pipeline, job.id) == []
    assert f"job {job.id} stopped: deleted" in worker.log()
    assert "Traceback" not in worker.log()


def _plant_half_written_files(pipeline, job_id: str) -> tuple:
    """What a run killed while writing leaves: a staging folder with a partial
    file, and a stem moved into the job's folder without any row for it."""
    staging = pipeline.stems_dir / f".staging-{job_id}-killed"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "vocals.wav").write_bytes(b"RIFF half written")
    moved = pipeline.stems_dir / job_id
    moved.mkdir(parents=True, exist_ok=True)
    (moved / "bass.wav").write_bytes(b"RIFF from the dead run")
    return staging, moved / "bass.wav"


def test_sigkilled_worker_job_is_retried_by_the_next_worker(
    pipeline, user, make_track, start_worker
):
    first = start_worker()
    job = create_separation_job(pipeline, user, make_track(seconds=LONG), {"stems": "vocals"})
    wait_status(pipeline, job.id, "running", min_progress=10)
    first.kill()
    stuck = get_job_row(pipeline, user, job.id)
    assert stuck.status == "running", "nobody has noticed yet"
    staging, stray = _plant_half_written_files(pipeline, job.id)

    second = start_worker()
    done = wait_final(pipeline, job.id)
    assert done.status == "completed", done.error_message
    assert done.attempts == 2
    assert [s.stem_type for s in _stems_of(pipeline, job.id)] == ["vocals"]
    assert not staging.exists()
    assert not stray.exists(), "a file no row describes is never left behind"
    assert _files_in(pipeline.stems_dir / job.id) == ["vocals.wav"]
    assert staging_dirs(pipeline) == []
    assert "recovered (its worker process is gone): queued" in second.log()


def test_sigkilled_worker_job_fails_with_the_reason_when_out_of_attempts(
    pipeline, user, make_track, start_worker
):
    first = start_worker()
    job = create_separation_job(pipeline, user, make_track(seconds=LONG))
    wait_status(pipeline, job.id, "running", min_progress=10)
    first.kill()
    staging, stray = _plant_half_written_files(pipeline, job.id)

    start_worker(SOUNDFORGE_JOB_MAX_ATTEMPTS="1")
    done = wait_final(pipeline, job.id)
    assert done.status == "failed"
    assert done.error_code == "worker_lost"
    assert "its worker process is gone" in done.error_message
    assert "attempt 1 of 1" in done.error_message
    assert _stems_of(pipeline, job.id) == []
    # The reconciler that won the job cleans its files just after writing
    # "failed" (only the winner may): wait for that, not for a guessed time.
    wait_for(lambda: not staging.exists() and not stray.exists(),
             "the dead run's half-written files to be removed")
    assert not (pipeline.stems_dir / job.id).exists()


def test_sigterm_hands_the_running_job_back(pipeline, user, make_track, start_worker):
    first = start_worker()
    job = create_separation_job(pipeline, user, make_track(seconds=LONG), {"stems": "vocals"})
    wait_status(pipeline, job.id, "running", min_progress=10)
    assert first.terminate() == 0
    handed_back = get_job_row(pipeline, user, job.id)
    assert handed_back.status == "queued"
    assert handed_back.attempts == 0, "a deliberate stop does not use up an attempt"
    assert pipeline.queue.pending_job_ids() == {job.id}
    assert staging_dirs(pipeline) == []

    start_worker()
    done = wait_final(pipeline, job.id)
    assert done.status == "completed" and done.attempts == 1


def get_job_row(pipeline, user, job_id: str) -> ProcessingJob:
    with pipeline.db.session() as session:
        return get_job(session, user, job_id)


@pytest.fixture
def tiny_disk(pipeline):
    """``uploads/stems`` on a real 256 KiB file system (tmpfs), so writing stems hits ENOSPC.

    A real full disk rather than a resource limit: RLIMIT_FSIZE would kill the
    runner with SIGXFSZ (or fail with EFBIG), which is not what a full disk does.
    Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is skipped.
    """
    target = pipeline.stems_dir
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill the disk needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(target)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield target
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", "-l", str(target)], check=True, capture_output=True)


def test_full_disk_fails_the_job_and_leaves_nothing(
    pipeline, user, make_track, shared_worker, tiny_disk
):
    # Four 3-second stems (about 2 MB of WAV) cannot fit in 256 KiB. (The
    # shared worker's stems folder is mounted over for this test only: what
    # other tests left there is hidden, and back after the unmount.)
    job = create_separation_job(pipeline, user, make_track(seconds=3.0))
    done = wait_final(pipeline, job.id)
    assert done.status == "failed"
    assert done.error_code == "output_error"
    assert "disk is full" in done.error_message
    assert _stems_of(pipeline, job.id) == []
    assert _files_in(tiny_disk) == [], "no partial stem and no staging folder remain"


def test_two_workers_share_the_queue_and_run_each_job_once(
    pipeline, user, make_track, start_worker
):
    run_jobs_on_two_workers(pipeline, user, make_track, start_worker)


# Three jobs for each of the four runner slots (two workers, two at a time):
# every slot claims again while the others are claiming, round after round.
# Twenty showed nothing more and cost each of these tests 2 s more CPU.
RACED_JOBS = 12


def run_jobs_on_two_workers(pipeline, user, make_track, start_worker) -> None:
    tracks = [make_track(seconds=1.0) for _ in range(RACED_JOBS)]
    jobs = [create_separation_job(pipeline, user, t, {"stems": "vocals"}) for t in tracks]
    assert len({job.id for job in jobs}) == RACED_JOBS
    assert pipeline.queue.pending_count() == RACED_JOBS
    # Start both at once, so they race for the same tasks from the start.
    workers = []
    starters = [
        threading.Thread(target=lambda: workers.append(start_worker(concurrency=2)))
        for _ in range(2)
    ]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()

    for job in jobs:
        done = wait_final(pipeline, job.id)
        assert done.status == "completed", done.error_message
        assert done.attempts == 1
        assert [s.stem_type for s in _stems_of(pipeline, job.id)] == ["vocals"]
    for worker in workers:
        assert worker.terminate() == 0
    claims = {job.id: sum(w.log().count(f"job {job.id} claimed by") for w in workers)
              for job in jobs}
    assert set(claims.values()) == {1}, f"each job is claimed once: {claims}"
    per_worker = [sum(w.log().count(f"job {job.id} claimed by") for job in jobs)
                  for w in workers]
    assert sum(per_worker) == RACED_JOBS
    assert pipeline.queue.pending_count() == 0
    assert staging_dirs(pipeline) == []
