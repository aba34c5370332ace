"""LALAL.AI work a job could not release when it ended, released later.

A job that fails during a provider outage cannot cancel its unfinished tasks
or delete its uploaded file (the user's audio on a third party's server): the
provider is the thing that is down. The engine reports what it could not
release; it is written to ``lalalai_releases`` and every worker's reconciler
tries again, with backoff (``SOUNDFORGE_LALALAI_RELEASE_DELAY``, 30 s,
doubling, at most an hour), until the
provider answers. The same happens when the clean-up of a dead worker's run
cannot reach the provider. A refusal (the key was removed or changed, the
file is already gone) is final: only an outage is retried. After
``GIVE_UP_AFTER`` the row is dropped with a warning; by then the provider has
expired the file on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pydantic import SecretStr
from sqlalchemy import delete, select, update

from soundforge.db.models import ProviderRelease, UserSettings
from soundforge.engines.base import ProviderWork
from soundforge.engines.lalalai.keys import key_id
from soundforge.engines.lalalai.release import release_provider_work
from soundforge.jobs.engines import lalalai_key_for
from soundforge.jobs.pipeline import Pipeline

log = logging.getLogger(__name__)

MAX_DELAY = 3600.0
LEASE = 600.0  # a worker that took a row and died: another may try after this
GIVE_UP_AFTER = 7 * 24 * 3600.0


def backoff(first: float, attempts: int) -> float:
    """The wait after ``attempts`` failed tries: ``first``, doubling, at most an hour."""
    return min(first * 2 ** max(attempts - 1, 0), MAX_DELAY)


def record_unreleased(
    pipeline: Pipeline, job_id: str | None, user_id: int | None, api_key: str,
    task_ids: Sequence[str], source_id: str | None, reason: str = "",
) -> None:
    """Remember provider work to release once the provider answers again."""
    if not task_ids and not source_id:
        return
    with pipeline.db.transaction() as session:
        session.add(ProviderRelease(
            user_id=user_id, job_id=job_id, key_id=key_id(SecretStr(api_key)),
            task_ids=list(task_ids), source_id=source_id or None,
            next_attempt_at=time.time() + pipeline.config.lalalai_release_delay,
            last_error=reason[:2000] or None,
        ))
    log.warning("job %s: LALAL.AI work (tasks %s, source %s) could not be released now; "
                "retrying later", job_id, ", ".join(task_ids) or "none", source_id or "none")


class UnreleasedRecorder:
    """The engine's ``on_unreleased`` hook (``RunHooks``) for one job."""

    def __init__(self, pipeline: Pipeline, job_id: str, user_id: int, api_key: str) -> None:
        self.pipeline, self.job_id, self.user_id, self.api_key = (
            pipeline, job_id, user_id, api_key)

    def __call__(self, work: ProviderWork) -> None:
        record_unreleased(self.pipeline, self.job_id, self.user_id, self.api_key,
                          work.task_ids, work.source_id or None, "the provider was unreachable")


def release_due(pipeline: Pipeline, now: float | None = None, limit: int = 20) -> dict[str, int]:
    """Try every release whose time has come; returns counts of what happened."""
    now = time.time() if now is None else now
    done = {"released": 0, "retry": 0, "dropped": 0}
    with pipeline.db.session() as session:
        due = session.execute(
            select(ProviderRelease.id, ProviderRelease.next_attempt_at)
            .where(ProviderRelease.next_attempt_at <= now)
            .order_by(ProviderRelease.next_attempt_at).limit(limit)
        ).all()
    for row_id, when in due:
        # Take the row (one worker at a time): a conditional UPDATE, like a job claim.
        with pipeline.db.transaction() as session:
            taken = session.execute(
                update(ProviderRelease)
                .where(ProviderRelease.id == row_id, ProviderRelease.next_attempt_at == when)
                .values(next_attempt_at=now + LEASE)
            )
        if not getattr(taken, "rowcount", 0):
            continue
        done[_release_one(pipeline, row_id, now)] += 1
    return done


def _release_one(pipeline: Pipeline, row_id: int, now: float) -> str:
    settings = pipeline.settings
    with pipeline.db.session() as session:
        row = session.get(ProviderRelease, row_id)
        if row is None:
            return "dropped"  # another worker finished it
        user_settings = session.get(UserSettings, row.user_id) if row.user_id else None
        try:
            api_key = lalalai_key_for(settings, user_settings)
        except Exception:  # a stored key this secret cannot read
            api_key = None
        job_id, tasks, source = row.job_id, list(row.task_ids or []), row.source_id
        wanted_key, attempts, created = row.key_id, row.attempts, row.created_at
    if api_key is None or key_id(SecretStr(api_key)) != wanted_key:
        log.warning("job %s: the LALAL.AI key that holds tasks %s and source %s is no longer "
                    "configured; the provider expires them on its own", job_id, tasks, source)
        return _drop(pipeline, row_id, "dropped")
    outcome = release_provider_work(settings, api_key, tasks, source)
    if not outcome.retry_tasks and not outcome.retry_source:
        log.info("job %s: released LALAL.AI work later: %s", job_id, outcome.summary())
        return _drop(pipeline, row_id)
    if now - created.timestamp() > GIVE_UP_AFTER:
        log.warning("job %s: gave up releasing LALAL.AI work after %d tries: %s",
                    job_id, attempts + 1, "; ".join(outcome.errors))
        return _drop(pipeline, row_id, "dropped")
    with pipeline.db.transaction() as session:
        session.execute(update(ProviderRelease).where(ProviderRelease.id == row_id).values(
            attempts=attempts + 1,
            next_attempt_at=now + backoff(pipeline.config.lalalai_release_delay, attempts + 1),
            task_ids=list(outcome.retry_tasks), source_id=outcome.retry_source,
            last_error="; ".join(outcome.errors)[:2000],
        ))
    return "retry"


def _drop(pipeline: Pipeline, row_id: int, result: str = "released") -> str:
    with pipeline.db.transaction() as session:
        session.execute(delete(ProviderRelease).where(ProviderRelease.id == row_id))
    return result
