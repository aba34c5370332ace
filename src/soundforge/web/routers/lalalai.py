"""The seed's LALAL.AI routes, exactly: quota, cancel, cancel-all (plus test-key).

``GET /api/lalalai/quota`` → ``{"quota_minutes", "used_minutes", "remaining_minutes"}``
for the key the user's separations use (their own, else the installation's).
``POST /api/lalalai/cancel`` cancels the LALAL.AI task of one job;
``POST /api/lalalai/cancel-all`` cancels all of the user's pending LALAL.AI work.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from soundforge.db import ProcessingJob, User
from soundforge.db.accounts import get_lalalai_key, get_user_settings
from soundforge.engines.base import SeparationOptions
from soundforge.engines.lalalai.engine import estimate as lalalai_estimate
from soundforge.engines.lalalai.ledger import DatabaseUsageLedger
from soundforge.engines.lalalai.quota import get_quota
from soundforge.errors import AuthError, InvalidOptionError, SoundForgeError
from soundforge.jobs.engines import lalalai_key_for
from soundforge.jobs.service import cancel_job, cancel_user_jobs, get_job
from soundforge.library.tracks import get_track
from soundforge.web.deps import ApiUser, DbSession
from soundforge.web.errors import NotFound
from soundforge.web.routers.api import CHANGE, ERRORS, ONE
from soundforge.web.schemas import (
    CancelIn,
    CancelOut,
    EstimateIn,
    EstimateOut,
    QuotaOut,
    TestKeyIn,
    error_responses,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/lalalai", tags=["lalalai"], responses=ERRORS)

NO_KEY = (
    "No LALAL.AI key is set: add yours under Settings → Cloud Separation "
    "(or ask the administrator to set SYSTEM_LALALAI_ACTIVATION_KEY)."
)


def _key_for(request: Request, session: DbSession, user: User) -> str:
    key = lalalai_key_for(request.app.state.settings, get_user_settings(session, user))
    if not key:
        raise AuthError(NO_KEY)
    return key


@router.get("/quota", response_model=QuotaOut, summary="LALAL.AI minutes: quota, used, left",
            responses=error_responses(422, 502))
async def quota(request: Request, session: DbSession, user: ApiUser) -> dict[str, float]:
    key = _key_for(request, session, user)
    return await run_in_threadpool(get_quota, request.app.state.settings, key,
                                   DatabaseUsageLedger(request.app.state.db))


@router.post("/test-key", response_model=QuotaOut, summary="Check a LALAL.AI key works",
             description="Asks LALAL.AI for the minutes left with the given key (or your "
             "saved one); answers the quota, or an auth_error.",
             responses={**CHANGE, **error_responses(502)})
async def test_key(
    request: Request, session: DbSession, user: ApiUser,
    body: Annotated[TestKeyIn, Body(default_factory=TestKeyIn)],
) -> dict[str, float]:
    key = (body.key or "").strip()
    if not key:
        key = get_lalalai_key(request.app.state.settings, get_user_settings(session, user)) or ""
    if not key:
        raise AuthError("Type a key to test, or save one first.")
    if len(key) > 200:
        raise InvalidOptionError("That is not a LALAL.AI key (too long).")
    return await run_in_threadpool(get_quota, request.app.state.settings, key,
                                   DatabaseUsageLedger(request.app.state.db))


@router.post("/estimate", response_model=EstimateOut, responses={**CHANGE, **ONE},
             summary="What a LALAL.AI separation of a track would cost, in minutes",
             description="The provider charges the track's duration (60 s at most for a "
             "preview) × the stems it extracts. Asks nothing of LALAL.AI; compare with "
             "`remaining_minutes` of `GET /api/lalalai/quota`.")
def estimate(request: Request, session: DbSession, user: ApiUser,
             body: EstimateIn) -> dict[str, Any]:
    track = get_track(session, user, body.track_id)
    options = SeparationOptions(
        stems=tuple(body.stems) if body.stems else ("vocals",),
        two_stems=body.two_stems, preview=body.preview,
    )
    return lalalai_estimate(request.app.state.settings, options, track.duration)


@router.post("/cancel", response_model=CancelOut, summary="Cancel the active LALAL.AI task",
             description="Cancels the LALAL.AI task of `job_id`, or of your most recent "
             "queued or running LALAL.AI job when none is given.",
             responses={**CHANGE, **ONE})
async def cancel(
    request: Request, session: DbSession, user: ApiUser,
    body: Annotated[CancelIn, Body(default_factory=CancelIn)],
) -> dict[str, Any]:
    job_id = body.job_id
    if job_id is None:
        job_id = request.query_params.get("job_id")
    job: ProcessingJob | None
    if job_id:
        job = get_job(session, user, job_id)
        if job.engine != "lalalai":
            raise InvalidOptionError("This separation runs on the local engine, not LALAL.AI.")
    else:
        job = session.scalar(
            select(ProcessingJob)
            .where(
                ProcessingJob.user_id == user.id,
                ProcessingJob.engine == "lalalai",
                ProcessingJob.status.in_(["queued", "running"]),
            )
            .order_by(ProcessingJob.created_at.desc())
        )
        if job is None:
            raise NotFound("active LALAL.AI separation")
    if job.status not in ("queued", "running"):
        return {"cancelled": 0, "job_ids": [], "provider_tasks_cancelled": 0}
    target = job.id
    settings = request.app.state.settings
    task_ids = [str(task_id) for task_id in job.provider_task_ids or []]
    key = lalalai_key_for(settings, get_user_settings(session, user)) if task_ids else None
    session.close()
    # Flag the job first, so that its worker takes the provider's "cancelled"
    # for the user's cancel; then stop the tasks at LALAL.AI from here, so the
    # answer can say what the provider did (the worker would only do it later).
    await run_in_threadpool(cancel_job, request.app.state.pipeline, user, target)
    provider = await _cancel_tasks(settings, key, task_ids)
    return {"cancelled": 1, "job_ids": [target], "provider_tasks_cancelled": provider}


async def _cancel_tasks(settings: Any, key: str | None, task_ids: list[str]) -> int:
    """Stop these tasks at LALAL.AI now; how many the provider stopped. The
    jobs are cancelled either way: their workers try the provider again."""
    if not task_ids or not key:
        return 0
    from soundforge.engines.lalalai.release import cancel_tasks

    try:
        outcomes = await run_in_threadpool(cancel_tasks, settings, key, task_ids)
    except SoundForgeError as exc:
        log.warning("LALAL.AI cancel of tasks %s failed: %s", task_ids, exc.message)
        return 0
    return sum(1 for outcome in outcomes.values() if outcome.ok)


@router.post("/cancel-all", response_model=CancelOut, responses=CHANGE,
             summary="Cancel all of your pending LALAL.AI work")
async def cancel_all(request: Request, session: DbSession, user: ApiUser) -> dict[str, Any]:
    settings = request.app.state.settings
    prefs = get_user_settings(session, user)
    own_key = get_lalalai_key(settings, prefs)
    # This user's own tasks, as recorded on their running jobs.
    task_ids = [str(task_id) for job in session.scalars(
        select(ProcessingJob).where(
            ProcessingJob.user_id == user.id, ProcessingJob.engine == "lalalai",
            ProcessingJob.status == "running")) for task_id in job.provider_task_ids or []]
    shared_key = None if own_key else lalalai_key_for(settings, prefs)
    session.close()
    ids = await run_in_threadpool(
        cancel_user_jobs, request.app.state.pipeline, user, "lalalai"
    )
    # With the installation's shared key: only the tasks recorded on this
    # user's jobs (the key also carries other users' tasks).
    provider = await _cancel_tasks(settings, shared_key, task_ids)
    if own_key:
        # Only with the user's own key: the installation's shared key carries
        # other users' tasks, which are not this user's to cancel.
        from soundforge.engines.lalalai.release import cancel_all as provider_cancel_all

        try:
            outcomes = await run_in_threadpool(provider_cancel_all, settings, own_key)
            provider = sum(1 for outcome in outcomes.values() if outcome.ok)
        except SoundForgeError as exc:
            log.warning("LALAL.AI cancel-all failed for user %s: %s", user.id, exc.message)
    return {"cancelled": len(ids), "job_ids": ids, "provider_tasks_cancelled": provider}
