"""Recovery rules, checked directly on job rows (the process-level cases are in
test_worker.py): who counts as dead, and what happens to their jobs."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from sqlalchemy import update

from soundforge.db.base import utcnow
from soundforge.db.models import ProcessingJob
from soundforge.jobs import create_separation_job
from soundforge.jobs.recovery import (
    boot_id,
    find_orphans,
    local_worker_alive,
    make_worker_id,
    recover,
)
from soundforge.jobs.state import claim, load_job


def _dead_local_worker_id() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    worker_id = make_worker_id(proc.pid)
    proc.wait()
    return worker_id


def _running_as(pipeline, job_id: str, worker_id: str, heartbeat_age: float = 0.0) -> None:
    assert claim(pipeline, job_id, worker_id) is not None
    with pipeline.db.transaction() as session:
        session.execute(
            update(ProcessingJob)
            .where(ProcessingJob.id == job_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age))
        )


def test_worker_ids_tell_live_dead_and_remote_workers_apart():
    assert local_worker_alive(make_worker_id()) is True
    assert local_worker_alive(_dead_local_worker_id()) is False
    # Same pid, another process start time: the pid was reused, the worker is dead.
    host, boot, pid, _ = make_worker_id().rsplit("/", 3)
    assert local_worker_alive(f"{host}/{boot}/{pid}/12345.00") is False
    assert local_worker_alive(f"{host}/{'0' * len(boot_id())}/{pid}/1.00") is None  # rebooted
    assert local_worker_alive(f"elsewhere/{boot}/{pid}/1.00") is None


def test_remote_worker_is_dead_only_after_the_heartbeat_timeout(pipeline, user, make_track):
    pipeline.config.orphan_timeout = 60
    fresh = create_separation_job(pipeline, user, make_track())
    stale = create_separation_job(pipeline, user, make_track())
    _running_as(pipeline, fresh.id, "gpu-node-7/abc/42/1.00", heartbeat_age=5)
    _running_as(pipeline, stale.id, "gpu-node-8/abc/42/1.00", heartbeat_age=120)

    assert [orphan.job_id for orphan in find_orphans(pipeline)] == [stale.id]
    done = recover(pipeline)
    assert done["requeued"] == [stale.id]
    assert load_job(pipeline, fresh.id).status == "running"
    requeued = load_job(pipeline, stale.id)
    assert requeued.status == "queued" and requeued.worker_id is None
    assert requeued.progress == 0 and requeued.attempts == 1
    assert stale.id in pipeline.queue.pending_job_ids()


def test_cancel_requested_orphan_ends_cancelled(pipeline, user, make_track):
    job = create_separation_job(pipeline, user, make_track())
    _running_as(pipeline, job.id, _dead_local_worker_id())
    with pipeline.db.transaction() as session:
        session.execute(
            update(ProcessingJob).where(ProcessingJob.id == job.id).values(cancel_requested=True)
        )
    assert recover(pipeline)["cancelled"] == [job.id]
    assert load_job(pipeline, job.id).status == "cancelled"


def test_two_reconcilers_act_once(pipeline, user, make_track):
    """Every worker sweeps; only one of them may requeue a given orphan."""
    job = create_separation_job(pipeline, user, make_track())
    pipeline.queue.flush()
    _running_as(pipeline, job.id, _dead_local_worker_id())
    orphans = find_orphans(pipeline)
    from soundforge.jobs.recovery import recover_orphan

    results = [recover_orphan(pipeline, orphan) for orphan in orphans * 2]
    assert results == ["queued", None]
    assert pipeline.queue.pending_count() == 1


def test_claim_is_exclusive(pipeline, user, make_track):
    job = create_separation_job(pipeline, user, make_track())
    assert claim(pipeline, job.id, "a/b/1/1.0") is not None
    assert claim(pipeline, job.id, "a/b/2/1.0") is None
    assert load_job(pipeline, job.id).worker_id == "a/b/1/1.0"


def test_worker_that_lost_its_job_stops_and_leaves_the_new_runs_files_alone(
    pipeline, user, make_track
):
    """A worker whose heartbeats were late while another machine's reconciler
    gave its job to a new run must stop, and must not touch the new run's files."""
    from soundforge.jobs.worker import start_embedded_worker
    from tests.pipeline.conftest import wait_for, wait_status
    from tests.pipeline.test_worker import LONG

    worker = start_embedded_worker(pipeline.settings, 1)
    try:
        job = create_separation_job(pipeline, user, make_track(seconds=LONG), {"stems": "vocals"})
        wait_status(pipeline, job.id, "running", min_progress=10)
        new_owner = "gpu-node-9/abc/77/1.00"
        with pipeline.db.transaction() as session:
            session.execute(
                update(ProcessingJob)
                .where(ProcessingJob.id == job.id)
                .values(worker_id=new_owner, heartbeat_at=utcnow())
            )
        new_output = pipeline.stems_dir / job.id / "vocals.wav"
        new_output.parent.mkdir(parents=True, exist_ok=True)
        new_output.write_bytes(b"the new run's stem")

        wait_for(lambda: job.id not in worker.monitor.running(), "the old run to stop")
        assert new_output.read_bytes() == b"the new run's stem"
        row = load_job(pipeline, job.id)
        assert (row.status, row.worker_id) == ("running", new_owner)
    finally:
        worker.stop()


def test_leftover_files_without_rows_are_collected(pipeline, user, make_track):
    import uuid

    from soundforge.jobs.recovery import collect_garbage
    from soundforge.jobs.state import cancel_queued

    track = make_track()
    queued = create_separation_job(pipeline, user, track, {"stems": "vocals"})
    ended = create_separation_job(pipeline, user, track, {"stems": "drums"})
    cancel_queued(pipeline, ended.id)
    stems, tracks = pipeline.stems_dir, pipeline.tracks_dir

    def plant(path):
        path.mkdir(parents=True, exist_ok=True)
        (path / "file.wav").write_bytes(b"x")
        return path

    keep = [
        plant(stems / queued.id),
        plant(stems / f".staging-{queued.id}-run"),  # may belong to a run starting now
        plant(stems / "not-a-job"),
        tracks / track.id,
    ]
    remove = [
        plant(stems / f".staging-{ended.id}-old"),
        plant(stems / str(uuid.uuid4())),
        plant(tracks / ".staging-abc-import"),
        plant(tracks / str(uuid.uuid4())),
    ]
    assert collect_garbage(pipeline, min_age=3600) == []  # all of it is too fresh
    assert sorted(collect_garbage(pipeline, min_age=0)) == sorted(remove)
    assert all(path.exists() for path in keep)
    assert not any(path.exists() for path in remove)
