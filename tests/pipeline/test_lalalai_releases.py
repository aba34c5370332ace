"""A LALAL.AI job that fails during a provider outage releases its work (its
unfinished task, its uploaded file) once the provider is back: the database
keeps the record and workers retry with backoff until it is done."""

from __future__ import annotations

from sqlalchemy import select

from soundforge.db.models import ProviderRelease
from soundforge.jobs import create_separation_job
from soundforge.jobs.releases import backoff
from tests.pipeline.conftest import wait_final, wait_for

OUTAGE = ("check", "cancel", "delete")



def releases(pipeline) -> list[ProviderRelease]:
    with pipeline.db.session() as session:
        return list(session.scalars(select(ProviderRelease)).all())


def test_work_left_in_an_outage_is_released_when_the_provider_is_back(
    pipeline, lalalai_user, make_track, fake_lalalai, start_worker
) -> None:
    fake_lalalai.hold()  # the task stays in progress at the provider
    job = create_separation_job(pipeline, lalalai_user, make_track(), {"stems": "vocals"})
    start_worker(SOUNDFORGE_RECONCILE_INTERVAL="0.3", SOUNDFORGE_LALALAI_RELEASE_DELAY="0.5")
    wait_for(lambda: fake_lalalai.tasks_in("progress"), "the provider task to start")
    for endpoint in OUTAGE:  # the provider goes down
        fake_lalalai.fail_next(endpoint, times=10_000)
    failed = wait_final(pipeline, job.id)
    assert failed.status == "failed", failed.error_message
    (task,) = fake_lalalai.tasks.values()
    source = fake_lalalai.sources[task.source_id]
    assert task.status == "progress" and not source.deleted
    (pending,) = wait_for(lambda: releases(pipeline) or None, "the release to be recorded")
    assert pending.job_id == job.id and pending.task_ids == [task.id]
    assert pending.source_id == source.id
    assert fake_lalalai.key not in (pending.last_error or "") + pending.key_id
    # Still down: tried again, later each time.
    wait_for(lambda: ((rows := releases(pipeline)) and rows[0].attempts >= 2) or None,
             "retries during the outage")

    fake_lalalai.clear_failures()  # the provider is back
    wait_for(lambda: source.deleted or None, "the uploaded file to be deleted")
    wait_for(lambda: not releases(pipeline) or None, "the release record to go")
    assert task.status == "cancelled" and task.cancelled_by == "cancel"


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(30, n) for n in (1, 2, 3)] == [30, 60, 120]
    assert backoff(30, 50) == 3600
