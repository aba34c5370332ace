"""The track page, the Separate Stems form, cancel, and live progress (SSE)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from soundforge.errors import NotFoundError, SoundForgeError
from soundforge.jobs.deletion import delete_separation
from soundforge.jobs.service import cancel_job, create_separation_job, get_job, list_jobs
from soundforge.library.tracks import get_track
from soundforge.web import catalog
from soundforge.web.deps import Csrf, DbSession, PageUser
from soundforge.web.errors import NotFound, public_message, status_for, wants_json
from soundforge.web.forms import options_from_form, separate_form_context
from soundforge.web.pages import flash, redirect, render, safe_next
from soundforge.web.resources import JobOut

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/tracks/{track_id}")
def track_page(request: Request, session: DbSession, user: PageUser, track_id: str) -> Response:
    track = get_track(session, user, track_id)
    jobs = list_jobs(session, user, track_id=track.id)
    context = {
        "track": track,
        "jobs": jobs,
        "has_stems": any(job.status == "completed" and job.stems for job in jobs),
    }
    context.update(separate_form_context(session, user, request.app.state.settings))
    return render(request, "track.html", context, user=user)


@router.get("/tracks/{track_id}/jobs/{job_id}")
def job_fragment(
    request: Request, session: DbSession, user: PageUser, track_id: str, job_id: str
) -> Response:
    """One separation's card, for the track page to swap in when a job finishes."""
    track = get_track(session, user, track_id)
    job = get_job(session, user, job_id)
    if job.track_id != track.id:
        raise NotFound("separation")
    context = {"track": track, "job": job}
    context.update(separate_form_context(session, user, request.app.state.settings))
    return request.app.state.templates.TemplateResponse(request, "_job_card.html", context)


@router.get("/tracks/{track_id}/separate")
def separate_page(request: Request, session: DbSession, user: PageUser, track_id: str) -> Response:
    track = get_track(session, user, track_id)
    context = {"track": track, "error": None}
    context.update(separate_form_context(session, user, request.app.state.settings))
    return render(request, "separate.html", context, user=user)


@router.post("/tracks/{track_id}/separate", dependencies=[Csrf])
async def separate(request: Request, user: PageUser, track_id: str) -> Response:
    pipeline = request.app.state.pipeline
    form = await request.form()
    options, force = options_from_form(form)
    try:
        job = await run_in_threadpool(
            create_separation_job, pipeline, user, track_id, options, force=force
        )
    except SoundForgeError as exc:
        if wants_json(request) or exc.code == "not_found":
            raise
        # Show the form again with the reason, keeping what the user chose.
        with pipeline.db.session() as session:
            track = get_track(session, user, track_id)
            context: dict[str, Any] = {"track": track, "error": public_message(request, exc)}
            context.update(separate_form_context(session, user, pipeline.settings))
            # Keep the user's choices, except the ones that cannot be shown.
            known: dict[str, Any] = {"engine": catalog.ENGINE_LABELS,
                                     "model": catalog.picker_names(),
                                     "format": catalog.OUTPUT_FORMATS}
            context["form_values"].update(
                {k: v for k, v in options.items() if k in known and v in known[k]}
            )
            context["form_values"]["stems"] = options.get("stems")
            for name in ("two_stems", "splitter", "extraction_level"):
                if options.get(name):
                    context["form_values"][name] = options[name]
            return render(request, "separate.html", context, user=user,
                          status_code=status_for(exc))
    if wants_json(request):
        return JSONResponse(JobOut.from_row(job).json_dict(), status_code=202)
    if job.status == "completed" and job.reused_from_job_id:
        flash(request, "ok", "These stems already existed: reused them instead of separating "
              "again (tick “Run again” to force a new run).")
    next_url = safe_next(str(form.get("next") or ""), f"/tracks/{track_id}")
    if next_url.startswith("/tracks/") and not next_url.startswith(f"/tracks/{track_id}"):
        next_url = f"/tracks/{track_id}"
    return redirect(next_url)


@router.post("/tracks/separate-batch", dependencies=[Csrf])
async def separate_batch(request: Request, user: PageUser) -> Response:
    """The library's batch: one set of options, one job per selected track.
    Each track is tried on its own: one that cannot start (not enough minutes
    for a long one, say) is named with the reason, the others still start."""
    pipeline = request.app.state.pipeline
    form = await request.form()
    options, force = options_from_form(form)
    track_ids = list(dict.fromkeys(str(t) for t in form.getlist("track_ids") if str(t)))
    if not track_ids:
        flash(request, "error", "Select at least one track (the box on its card), then "
              "press Separate selected.")
        return redirect("/")
    started = 0
    refused: list[str] = []
    for track_id in track_ids:
        try:
            await run_in_threadpool(
                create_separation_job, pipeline, user, track_id, options, force=force)
            started += 1
        except SoundForgeError as exc:
            title = _track_title(pipeline, user, track_id)
            refused.append(f"{title}: {exc.message}")
    if started:
        flash(request, "ok", f"Started {started} separation{'s' if started != 1 else ''}.")
    if refused:
        # The flash lives in the session cookie: name a few, count the rest.
        shown = " · ".join(text[:300] for text in refused[:3])
        more = f" · and {len(refused) - 3} more" if len(refused) > 3 else ""
        flash(request, "error", f"Not started: {shown}{more}")
    return redirect("/")


def _track_title(pipeline: Any, user: Any, track_id: str) -> str:
    with pipeline.db.session() as session:
        try:
            return str(get_track(session, user, track_id).title)
        except NotFoundError:
            return "a track that is not in your library"


@router.post("/jobs/{job_id}/cancel", dependencies=[Csrf])
async def cancel(request: Request, user: PageUser, job_id: str) -> Response:
    pipeline = request.app.state.pipeline
    with pipeline.db.session() as session:
        get_job(session, user, job_id)
    job = await run_in_threadpool(cancel_job, pipeline, user, job_id)
    if wants_json(request) or request.headers.get("x-csrf-token"):
        return JSONResponse(JobOut.from_row(job).json_dict())
    flash(request, "info", "Cancelling the separation.")
    return redirect(f"/tracks/{job.track_id}")


@router.post("/jobs/{job_id}/delete", dependencies=[Csrf])
async def delete_job(request: Request, user: PageUser, job_id: str) -> Response:
    track_id = await run_in_threadpool(delete_separation, request.app.state.pipeline, user,
                                       job_id)
    flash(request, "ok", "Separation deleted with its stems.")
    return redirect(f"/tracks/{track_id}")


@router.get("/events")
def user_events(request: Request, user: PageUser) -> Response:
    """All of the signed-in user's job updates (the pages' one live stream)."""
    return request.app.state.events.user_stream(request, user.id)


@router.get("/jobs/{job_id}/events")
def job_events(request: Request, session: DbSession, user: PageUser, job_id: str) -> Response:
    get_job(session, user, job_id)
    return request.app.state.events.job_stream(request, job_id, user.id)
