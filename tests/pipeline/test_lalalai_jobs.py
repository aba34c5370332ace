"""LALAL.AI jobs through the pipeline, against the fake LALAL.AI server.

The user's own key is stored encrypted in their settings; the worker process
decrypts it and the fake server checks it on every request.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from soundforge.db.models import ProcessingJob, Stem, UserSettings
from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.errors import QuotaError
from soundforge.jobs import cancel_job, create_separation_job
from soundforge.jobs.recovery import make_worker_id, recover
from soundforge.jobs.state import claim, load_job, record_provider_work
from tests.pipeline.conftest import wait_final, wait_for, wait_status


def _stem_types(pipeline, job_id: str) -> list[str]:
    with pipeline.db.session() as session:
        return sorted(session.scalars(select(Stem.stem_type).where(Stem.job_id == job_id)))


def test_lalalai_job_completes_with_the_users_key(
    pipeline, lalalai_user, make_track, fake_lalalai, shared_worker
):
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    assert job.engine == "lalalai" and job.model == "auto"
    done = wait_final(pipeline, job.id)
    assert done.status == "completed", done.error_message
    assert _stem_types(pipeline, job.id) == ["no_vocals", "vocals"]
    assert done.provider_task_ids and set(done.provider_task_ids) <= set(fake_lalalai.tasks)
    assert {task.key for task in fake_lalalai.tasks.values()} == {fake_lalalai.key}
    for stem in _stem_types(pipeline, job.id):
        assert (pipeline.stems_dir / job.id / f"{stem}.wav").is_file()


def test_the_upload_is_named_after_the_track(
    pipeline, lalalai_user, make_track, fake_lalalai, shared_worker
):
    """The library stores every track as original.<ext>; at LALAL.AI (the
    user's dashboard there) the file must carry the track's name."""
    track = make_track()
    full = create_separation_job(pipeline, lalalai_user, track, {"stems": "vocals"})
    preview = create_separation_job(pipeline, lalalai_user, track,
                                    {"stems": "drums", "preview": True})
    for job in (full, preview):
        assert wait_final(pipeline, job.id).status == "completed"
    names = sorted(source.name for source in fake_lalalai.sources.values())
    assert names == [f"{track.title} (preview).flac", f"{track.title}.wav"]
    assert track.title.startswith("Song ")


def test_not_enough_minutes_is_refused_up_front(
    pipeline, lalalai_user, make_track, fake_lalalai
):
    fake_lalalai.set_minutes(0.01)
    with pytest.raises(QuotaError) as caught:
        create_separation_job(pipeline, lalalai_user, make_track(seconds=3.0))
    assert "minute" in caught.value.message
    with pipeline.db.session() as session:
        assert session.scalar(select(func.count(ProcessingJob.id))) == 0
    assert fake_lalalai.calls["upload"] == 0


def test_preview_setting_is_applied(pipeline, lalalai_user, make_track):
    with pipeline.db.transaction() as session:
        session.get(UserSettings, lalalai_user.id).lalalai_preview = True
    job = create_separation_job(pipeline, lalalai_user, make_track())
    assert job.options["preview"] is True
    full = create_separation_job(pipeline, lalalai_user, make_track(), {"preview": "false"})
    assert full.options["preview"] is False


def test_provider_failure_fails_the_job_with_its_message(
    pipeline, lalalai_user, make_track, fake_lalalai, shared_worker
):
    fake_lalalai.fail_tasks()
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    done = wait_final(pipeline, job.id)
    assert done.status == "failed"
    assert "Unable to detect the stem" in done.error_message
    assert done.error_code
    assert _stem_types(pipeline, job.id) == []
    assert not (pipeline.stems_dir / job.id).exists()


def test_cancel_running_lalalai_job_cancels_the_provider_task(
    pipeline, lalalai_user, make_track, fake_lalalai, shared_worker
):
    fake_lalalai.hold()  # tasks stay in progress until released
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    wait_status(pipeline, job.id, "running", min_progress=10)
    wait_for(lambda: fake_lalalai.tasks_in("progress"), "the provider task to start")
    cancel_job(pipeline, lalalai_user, job.id)
    done = wait_final(pipeline, job.id)
    fake_lalalai.release()
    assert done.status == "cancelled"
    assert fake_lalalai.tasks_in("progress") == []
    assert len(fake_lalalai.tasks_in("cancelled")) == 1
    assert _stem_types(pipeline, job.id) == []
    assert not (pipeline.stems_dir / job.id).exists()


def _provider_work(pipeline, job_id: str) -> tuple[list[str], str | None, str]:
    job = load_job(pipeline, job_id)
    assert job is not None
    return list(job.provider_task_ids), job.provider_source_id, job.status


def test_task_ids_are_on_the_row_while_the_job_runs(
    pipeline, lalalai_user, make_track, fake_lalalai, shared_worker
):
    fake_lalalai.hold()  # the job cannot finish before the test looked
    job = create_separation_job(pipeline, lalalai_user, make_track(),
                                {"stems": "vocals,synth"})
    task_ids, source_id, status = wait_for(
        lambda: (work := _provider_work(pipeline, job.id))[0] and len(work[0]) == 2 and work,
        "the provider tasks on the row",
    )
    assert status == "running"
    assert set(task_ids) == {task.id for task in fake_lalalai.tasks_in("progress")}
    assert list(fake_lalalai.sources) == [source_id]
    fake_lalalai.release()
    done = wait_final(pipeline, job.id)
    assert done.status == "completed", done.error_message
    assert set(done.provider_task_ids) == set(task_ids)


def test_sigkilled_workers_provider_tasks_are_cancelled_by_the_next_worker(
    pipeline, lalalai_user, make_track, fake_lalalai, start_worker
):
    # Two processes poll with the same key: room for both in the fake's budget.
    fake_lalalai.check_limit = 100_000
    fake_lalalai.hold()
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    first = start_worker()
    (dead_task,), dead_source, _ = wait_for(
        lambda: (work := _provider_work(pipeline, job.id))[0] and work,
        "the first run's task on the row",
    )
    first.kill()
    assert fake_lalalai.tasks[dead_task].status == "progress"

    second = start_worker()
    # Released before the retry starts its own task (held: it cannot finish).
    wait_for(lambda: len(fake_lalalai.tasks) == 2, "the retry's task")
    assert fake_lalalai.tasks[dead_task].cancelled_by == "cancel"
    assert fake_lalalai.sources[dead_source].deleted
    retry_task = next(task_id for task_id in fake_lalalai.tasks if task_id != dead_task)
    assert fake_lalalai.tasks[retry_task].status == "progress"
    fake_lalalai.release()
    done = wait_final(pipeline, job.id)
    assert done.status == "completed", done.error_message
    assert done.attempts == 2
    assert done.provider_task_ids == [retry_task]
    assert done.provider_source_id != dead_source
    assert all(source.deleted for source in fake_lalalai.sources.values())
    log = second.log()
    assert f"job {job.id}: the stopped run's LALAL.AI work (tasks {dead_task}" in log
    assert "cancelled 1 unfinished task(s) and deleted the uploaded file" in log
    assert fake_lalalai.key not in log


def _dead_run_with_provider_work(pipeline, job_id: str, fake_lalalai) -> tuple[str, str]:
    """The row of a run that started a task at the provider and then died."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_worker = make_worker_id(proc.pid)
    proc.wait()
    assert claim(pipeline, job_id, dead_worker) is not None
    with pipeline.db.session() as session:
        track_path = session.get(ProcessingJob, job_id).track.file_path
    with LalalaiClient(fake_lalalai.url, SecretStr(fake_lalalai.key)) as client:
        source = client.upload(pipeline.uploads_dir / track_path, "song.wav")
        task_id = client.split_stem_separator(source.id, {"stem": "vocals"})
    assert record_provider_work(pipeline, job_id, dead_worker, [task_id], source.id)
    return task_id, source.id


def test_dead_run_out_of_attempts_fails_saying_its_tasks_were_cancelled(
    pipeline, lalalai_user, make_track, fake_lalalai
):
    pipeline.config.job_max_attempts = 1
    fake_lalalai.hold()
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    task_id, source_id = _dead_run_with_provider_work(pipeline, job.id, fake_lalalai)

    assert recover(pipeline)["failed"] == [job.id]
    failed = load_job(pipeline, job.id)
    assert failed.status == "failed" and failed.error_code == "worker_lost"
    assert "attempt 1 of 1" in failed.error_message
    assert failed.error_message.endswith(
        "At LALAL.AI, SoundForge cancelled 1 unfinished task(s) and deleted the uploaded file."
    )
    assert fake_lalalai.tasks[task_id].cancelled_by == "cancel"
    assert fake_lalalai.sources[source_id].deleted


def test_dead_run_cleanup_that_cannot_reach_the_provider_says_so(
    pipeline, lalalai_user, make_track, fake_lalalai, monkeypatch
):
    fake_lalalai.hold()
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    task_id, source_id = _dead_run_with_provider_work(pipeline, job.id, fake_lalalai)
    fake_lalalai.fail_next("cancel", times=2)
    fake_lalalai.fail_next("delete", times=2)
    with pipeline.db.transaction() as session:  # the user cancelled as the worker died
        session.get(ProcessingJob, job.id).cancel_requested = True

    assert recover(pipeline)["cancelled"] == [job.id]
    cancelled = load_job(pipeline, job.id)
    assert cancelled.status == "cancelled"
    assert "Could not clean up at LALAL.AI" in cancelled.error_message
    assert fake_lalalai.key not in cancelled.error_message
    assert fake_lalalai.tasks[task_id].status == "progress"
    assert not fake_lalalai.sources[source_id].deleted
