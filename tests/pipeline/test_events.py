"""Live events: the database-polling bus and the Redis bus give the same stream."""

from __future__ import annotations

import asyncio

import pytest

from soundforge.config import Settings
from soundforge.jobs import Pipeline, create_separation_job, state
from soundforge.jobs.deletion import delete_track
from soundforge.jobs.events import DatabaseEventBus
from soundforge.jobs.redis_events import RedisEventBus
from tests.support.events import first_events, follow_until_final

WORKER = "test-host/boot/1/1.0"


def _check_stream(pipeline: Pipeline, user, make_track) -> None:
    """What a worker does to a job, without a worker, one change at a time: each
    is read before the next is made (a poller merges changes that land between
    two polls), so no step waits for a guessed time."""
    job = create_separation_job(pipeline, user, make_track())
    steps = [
        lambda: state.claim(pipeline, job.id, WORKER),
        *(lambda progress=progress: state.set_progress(pipeline, job.id, WORKER, progress)
          for progress in (10, 20, 30)),
        lambda: state.fail(pipeline, job.id, WORKER, "The engine broke.", "engine_error"),
    ]

    async def follow() -> list:
        async with pipeline.events.asubscribe(job_ids=[job.id], user_id=user.id,
                                              until_final=True) as sub:
            events = [await sub.get(timeout=10)]  # the snapshot taken on subscribing
            for step in steps:
                assert await asyncio.to_thread(step) is not None
                events.append(await sub.get(timeout=10))
            return events

    events = asyncio.run(follow())
    assert None not in events, "every change arrives within 10 s"
    versions = [event.version for event in events]
    assert versions == sorted(set(versions)), "no event twice, none out of order"
    assert [event.status for event in events] == ["queued", "running", "running", "running",
                                                  "running", "failed"]
    assert [event.progress for event in events][:5] == [0, 0, 10, 20, 30]
    assert events[-1].error_message == "The engine broke."
    assert events[-1].error_code == "engine_error"


def test_database_bus_stream(pipeline, user, make_track):
    assert isinstance(pipeline.events, DatabaseEventBus)
    _check_stream(pipeline, user, make_track)


@pytest.mark.services
def test_redis_bus_stream(settings, redis_url, user, make_track):
    with Pipeline.open(settings.model_copy(update={"queue_url": redis_url})) as redis_pipeline:
        assert isinstance(redis_pipeline.events, RedisEventBus)
        _check_stream(redis_pipeline, user, make_track)


@pytest.mark.services
def test_redis_bus_hears_every_ten_percent_step(settings, redis_url, user, make_track):
    """Pub/sub delivers each step (a poller may merge steps that land between two polls)."""
    with Pipeline.open(settings.model_copy(update={"queue_url": redis_url})) as redis_pipeline:
        job = create_separation_job(redis_pipeline, user, make_track())

        def drive() -> None:
            state.claim(redis_pipeline, job.id, WORKER)
            for progress in range(10, 100, 10):
                state.set_progress(redis_pipeline, job.id, WORKER, progress)
            state.cancelled(redis_pipeline, job.id, WORKER)

        events = follow_until_final(redis_pipeline.events, [job.id], then=drive)
    assert [e.progress for e in events if e.status == "running"] == list(range(0, 100, 10))
    assert events[-1].status == "cancelled"


def _check_deleted(pipeline: Pipeline, user, make_track) -> None:
    track = make_track()
    job = create_separation_job(pipeline, user, track)
    first, gone = first_events(
        pipeline.events, [job.id], count=2,
        between=lambda: delete_track(pipeline, user, track.id),
    )
    assert first is not None and first.status == "queued"
    assert gone is not None and gone.status == "deleted" and gone.job_id == job.id


def test_deleted_job_ends_a_database_subscription(pipeline, user, make_track):
    _check_deleted(pipeline, user, make_track)


@pytest.mark.services
def test_deleted_job_ends_a_redis_subscription(settings, redis_url, user, make_track):
    with Pipeline.open(settings.model_copy(update={"queue_url": redis_url})) as redis_pipeline:
        _check_deleted(redis_pipeline, user, make_track)


def _check_user_stream(pipeline: Pipeline, user, make_track) -> None:
    """A dashboard subscription sees jobs created after it started, and only its user's."""
    from soundforge.db.accounts import create_user

    with pipeline.db.transaction() as session:
        other = create_user(session, "eve@example.com", "another secret")

    async def follow() -> list:
        seen = []
        async with pipeline.events.asubscribe(user_id=user.id) as sub:
            await asyncio.to_thread(create_separation_job, pipeline, other, make_track(owner=other))
            job = await asyncio.to_thread(create_separation_job, pipeline, user, make_track())
            await asyncio.to_thread(state.cancel_queued, pipeline, job.id)
            while not seen or seen[-1].status != "cancelled":
                event = await sub.get(timeout=10)
                assert event is not None, "no event within 10 s"
                seen.append(event)
        return seen

    events = asyncio.run(follow())
    assert {event.user_id for event in events} == {user.id}
    assert [event.status for event in events][-1] == "cancelled"


def test_user_stream_database(pipeline, user, make_track):
    _check_user_stream(pipeline, user, make_track)


@pytest.mark.services
def test_user_stream_redis(settings, redis_url, user, make_track):
    with Pipeline.open(settings.model_copy(update={"queue_url": redis_url})) as redis_pipeline:
        _check_user_stream(redis_pipeline, user, make_track)


def test_other_users_job_looks_deleted(pipeline, user, make_track):
    job = create_separation_job(pipeline, user, make_track())
    (event,) = first_events(pipeline.events, [job.id], user.id + 1, timeout=5)
    assert event is not None and event.status == "deleted"


def test_subscription_arguments_are_checked(tmp_path):
    from soundforge.db import Database

    bus = DatabaseEventBus(Database(Settings(data_dir=tmp_path)))
    with pytest.raises(ValueError):
        bus.asubscribe()
    with pytest.raises(ValueError):
        bus.asubscribe(user_id=1, until_final=True)
