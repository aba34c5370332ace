"""The many-machines setup: PostgreSQL for the database, Redis for the queue and events,
with worker processes sharing both."""

from __future__ import annotations

import pytest

from soundforge.config import Settings
from soundforge.jobs import create_separation_job
from soundforge.jobs.redis_events import RedisEventBus
from tests.pipeline.conftest import wait_final, wait_status
from tests.pipeline.test_worker import LONG, _stems_of, run_jobs_on_two_workers
from tests.support.events import follow_until_final

pytestmark = pytest.mark.services


@pytest.fixture
def settings(pipeline_env, postgres_url, redis_url, monkeypatch) -> Settings:
    # In the environment, so the worker processes started by the tests see them too.
    monkeypatch.setenv("SOUNDFORGE_DATABASE_URL", postgres_url)
    monkeypatch.setenv("SOUNDFORGE_QUEUE_URL", redis_url)
    return Settings()


def test_two_workers_share_postgres_and_redis_and_run_each_job_once(
    pipeline, user, make_track, start_worker
):
    assert pipeline.db.engine.dialect.name == "postgresql"
    assert pipeline.queue.is_redis
    run_jobs_on_two_workers(pipeline, user, make_track, start_worker)


def test_live_progress_over_redis_from_a_worker_process(pipeline, user, make_track, start_worker):
    assert isinstance(pipeline.events, RedisEventBus)
    job = create_separation_job(pipeline, user, make_track(seconds=LONG), {"stems": "vocals"})
    events = follow_until_final(pipeline.events, [job.id], then=start_worker)
    assert events[-1].status == "completed"
    running = [event.progress for event in events if event.status == "running"]
    # A 30-second track gives the tiny model dozens of progress reports: every
    # 10 % step is written and, over pub/sub, every one is heard.
    assert running == list(range(0, 100, 10))
    assert [s.stem_type for s in _stems_of(pipeline, job.id)] == ["vocals"]


def test_sigkilled_worker_is_recovered_on_postgres(pipeline, user, make_track, start_worker):
    first = start_worker()
    job = create_separation_job(pipeline, user, make_track(seconds=LONG), {"stems": "vocals"})
    wait_status(pipeline, job.id, "running", min_progress=10)
    first.kill()
    start_worker()
    done = wait_final(pipeline, job.id)
    assert done.status == "completed" and done.attempts == 2
