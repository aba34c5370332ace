"""LALAL.AI jobs through the pipeline, against the fake LALAL.AI server.

The user's own key is stored encrypted in their settings; the worker process
decrypts it and the fake server checks it on every request.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from soundforge.db.accounts import set_lalalai_key
from soundforge.db.models import ProcessingJob, Stem, UserSettings
from soundforge.errors import QuotaError
from soundforge.jobs import cancel_job, create_separation_job
from tests.pipeline.conftest import wait_final, wait_for, wait_status


@pytest.fixture
def lalalai_user(pipeline, user, fake_lalalai, monkeypatch):
    # The URL in the environment: the worker processes must reach the fake too.
    monkeypatch.setenv("SOUNDFORGE_LALALAI_URL", fake_lalalai.url)
    monkeypatch.setenv("SOUNDFORGE_LALALAI_POLL_INTERVAL", "0.2")
    pipeline.settings.lalalai_url = fake_lalalai.url  # type: ignore[misc]
    with pipeline.db.transaction() as session:
        row = session.get(UserSettings, user.id)
        row.engine = "lalalai"
        row.lalalai_preview = False
        set_lalalai_key(pipeline.settings, row, fake_lalalai.key)
    return user


def _stem_types(pipeline, job_id: str) -> list[str]:
    with pipeline.db.session() as session:
        return sorted(session.scalars(select(Stem.stem_type).where(Stem.job_id == job_id)))


def test_lalalai_job_completes_with_the_users_key(
    pipeline, lalalai_user, make_track, fake_lalalai, start_worker
):
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    assert job.engine == "lalalai" and job.model == "auto"
    start_worker()
    done = wait_final(pipeline, job.id)
    assert done.status == "completed", done.error_message
    assert _stem_types(pipeline, job.id) == ["no_vocals", "vocals"]
    assert done.provider_task_ids and set(done.provider_task_ids) <= set(fake_lalalai.tasks)
    assert {task.key for task in fake_lalalai.tasks.values()} == {fake_lalalai.key}
    for stem in _stem_types(pipeline, job.id):
        assert (pipeline.stems_dir / job.id / f"{stem}.wav").is_file()


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
    pipeline, lalalai_user, make_track, fake_lalalai, start_worker
):
    fake_lalalai.fail_tasks()
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    start_worker()
    done = wait_final(pipeline, job.id)
    assert done.status == "failed"
    assert "Unable to detect the stem" in done.error_message
    assert done.error_code
    assert _stem_types(pipeline, job.id) == []
    assert not (pipeline.stems_dir / job.id).exists()


def test_cancel_running_lalalai_job_cancels_the_provider_task(
    pipeline, lalalai_user, make_track, fake_lalalai, start_worker
):
    fake_lalalai.hold()  # tasks stay in progress until released
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    start_worker()
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
