"""The REST API for scripts (``/api/…``), documented at ``/docs``.

Authenticated by a personal token (``Authorization: Bearer sf_…``), or by the
session cookie plus the ``X-CSRF-Token`` header (the app's own pages).
Errors are ``{"error": {"code", "message"}}`` with a stable code.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from soundforge.db.accounts import get_user_settings
from soundforge.errors import InputAudioError
from soundforge.jobs.deletion import delete_separation, delete_track
from soundforge.jobs.service import cancel_job, create_separation_job, get_job, get_stem, list_jobs
from soundforge.library.files import resolve_upload
from soundforge.library.peaks import stem_peaks
from soundforge.library.tracks import get_track, list_tracks
from soundforge.web import catalog
from soundforge.web.deps import ApiUser, DbSession
from soundforge.web.errors import WebError, error_body, status_for
from soundforge.web.ingest import import_uploads
from soundforge.web.resources import JobOut, TrackOut, stems_out
from soundforge.web.schemas import (
    JobList,
    MeOut,
    ModelOut,
    PeaksOut,
    SeparationIn,
    SettingsIn,
    SettingsOut,
    StemList,
    TrackList,
    TrackPeaksOut,
    UploadOut,
    error_responses,
)
from soundforge.web.user_settings import apply_settings_update, settings_dict

# Every route: 401. Routes about one item add 404 (ONE); changes (POST, PATCH,
# DELETE) add 403 (CSRF, CHANGE). FastAPI adds 422 to every route that reads
# parameters or a body (web/openapi.py gives it our error body).
ERRORS = error_responses(401)
ONE = error_responses(404)
CHANGE = error_responses(403)

router = APIRouter(prefix="/api", responses=ERRORS)


@router.get("/me", response_model=MeOut, tags=["settings"], summary="Who the token belongs to")
def me(user: ApiUser) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "display_name": user.display_name}


@router.get("/models", response_model=list[ModelOut], tags=["separations"],
            summary="The model comparison: engines, models, stems, quality, speed, cost")
def models(user: ApiUser) -> list[dict[str, Any]]:
    rows = []
    stems = catalog.model_stems()
    for row in catalog.comparison_rows():
        rows.append({
            "name": row.name, "engine": row.engine.lower(),
            "stems": stems.get(row.key, list(catalog.LALALAI_STEMS)),
            "quality": row.quality, "speed": row.speed, "cost": row.cost,
            "description": row.description,
        })
    return rows


# --- tracks -----------------------------------------------------------------------
@router.get("/tracks", response_model=TrackList, tags=["tracks"], summary="List your tracks")
def api_list_tracks(
    session: DbSession, user: ApiUser, q: str = "", sort: str = "newest"
) -> dict[str, Any]:
    if sort not in ("newest", "oldest", "title", "artist"):
        raise WebError(422, "invalid_option",
                       "sort must be one of newest, oldest, title, artist.")
    tracks = list_tracks(session, user, q.strip()[:200] or None, sort)
    return {"tracks": [TrackOut.from_row(t) for t in tracks]}


@router.post(
    "/tracks",
    response_model=UploadOut,
    status_code=201,
    tags=["tracks"],
    summary="Upload one or more audio files (multipart field 'files')",
    responses={**CHANGE, **error_responses(413, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                    }
                }
            },
        }
    },
)
async def api_upload(request: Request, user: ApiUser) -> Response:
    # The body is parsed here, after authentication (not before, as a declared
    # File parameter would): a stranger's upload is refused unread.
    outcomes = await import_uploads(request, user)
    added = [o.track for o in outcomes if o.track is not None]
    errors = [
        {"filename": o.filename, "code": o.error.code, "message": o.error.message}
        for o in outcomes
        if o.error is not None
    ]
    if not added:
        first = next(o.error for o in outcomes if o.error is not None)
        status = first.status if isinstance(first, WebError) else status_for(first)
        return JSONResponse(error_body(first.code, first.message, files=errors),
                            status_code=status)
    return JSONResponse({"tracks": [TrackOut.from_row(t).json_dict() for t in added],
                         "errors": errors},
                        status_code=201)


@router.get("/tracks/{track_id}", response_model=TrackOut, tags=["tracks"], responses=ONE,
            summary="One track")
def api_get_track(session: DbSession, user: ApiUser, track_id: str) -> TrackOut:
    return TrackOut.from_row(get_track(session, user, track_id))


@router.delete("/tracks/{track_id}", status_code=204, tags=["tracks"], responses={**ONE, **CHANGE},
               summary="Delete a track with all its separations and stems")
async def api_delete_track(request: Request, user: ApiUser, track_id: str) -> Response:
    await run_in_threadpool(delete_track, request.app.state.pipeline, user, track_id)
    return Response(status_code=204)


# --- separations ------------------------------------------------------------------
@router.post(
    "/tracks/{track_id}/separations",
    response_model=JobOut,
    status_code=202,
    tags=["separations"],
    summary="Start a separation (or get the identical one already running)",
    responses={**ONE, **CHANGE, **error_responses(402, 502, 503)},
)
async def api_create_separation(
    request: Request, user: ApiUser, track_id: str,
    # Optional, yet declared as the model itself: "SeparationIn | None" showed
    # /docs an empty body. Without a body every option comes from the settings.
    body: Annotated[SeparationIn, Body(default_factory=SeparationIn)],
) -> Response:
    options = body.model_dump(exclude_none=True, exclude={"force"})
    job = await run_in_threadpool(
        create_separation_job, request.app.state.pipeline, user, track_id, options,
        force=body.force,
    )
    return JSONResponse(JobOut.from_row(job, with_stems=True).json_dict(), status_code=202)


@router.get("/tracks/{track_id}/jobs", response_model=JobList, tags=["separations"], responses=ONE,
            summary="Every separation of a track, newest first")
def api_track_jobs(session: DbSession, user: ApiUser, track_id: str) -> dict[str, Any]:
    track = get_track(session, user, track_id)
    jobs = list_jobs(session, user, track_id=track.id)
    return {"jobs": [JobOut.from_row(job, with_stems=True) for job in jobs]}


@router.get("/tracks/{track_id}/stems", response_model=StemList, tags=["separations"],
            responses=ONE, summary="Every stem of a track (all completed separations)")
def api_track_stems(session: DbSession, user: ApiUser, track_id: str) -> dict[str, Any]:
    track = get_track(session, user, track_id)
    jobs = list_jobs(session, user, track_id=track.id, statuses=["completed"])
    return {"stems": [stem for job in jobs for stem in stems_out(job.stems)]}


@router.get("/jobs", response_model=JobList, tags=["separations"],
            summary="Your separations, newest first")
def api_jobs(session: DbSession, user: ApiUser, status: str | None = None,
             limit: int = 100) -> dict[str, Any]:
    statuses = [s.strip() for s in status.split(",")] if status else None
    jobs = list_jobs(session, user, statuses=statuses, limit=max(1, min(limit, 500)))
    return {"jobs": [JobOut.from_row(job) for job in jobs]}


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["separations"], responses=ONE,
            summary="A separation's status and progress")
def api_job(session: DbSession, user: ApiUser, job_id: str) -> JobOut:
    return JobOut.from_row(get_job(session, user, job_id), with_stems=True)


@router.get(
    "/jobs/{job_id}/events",
    tags=["separations"],
    summary="Follow a separation live (Server-Sent Events)",
    description="A `job` event with the status and progress now, then one per change; "
    "an `end` event once the job is completed, failed or cancelled. Comment lines "
    "keep the connection alive.",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}}, **ONE},
)
def api_job_events(
    request: Request, session: DbSession, user: ApiUser, job_id: str
) -> Response:
    get_job(session, user, job_id)
    return request.app.state.events.job_stream(request, job_id, user.id)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["separations"],
             responses={**ONE, **CHANGE}, summary="Cancel a queued or running separation")
async def api_cancel(request: Request, user: ApiUser, job_id: str) -> JobOut:
    job = await run_in_threadpool(cancel_job, request.app.state.pipeline, user, job_id)
    return JobOut.from_row(job)


@router.get("/jobs/{job_id}/stems", response_model=StemList, tags=["separations"], responses=ONE,
            summary="The stems of a completed separation")
def api_job_stems(session: DbSession, user: ApiUser, job_id: str) -> dict[str, Any]:
    job = get_job(session, user, job_id)
    return {"stems": stems_out(job.stems)}


@router.get("/stems/{stem_id}/peaks", response_model=PeaksOut, tags=["separations"],
            responses={**ONE, **error_responses(500, s500="stem_damaged: the stored stem "
                                                "cannot be read; run the separation again")},
            summary="A stem's waveform: min/max of its mono mix in 1600 slices")
def api_stem_peaks(request: Request, session: DbSession, user: ApiUser,
                   stem_id: int) -> dict[str, Any]:
    # A plain def: FastAPI runs it in its thread pool, and reading a long stem
    # takes seconds that must not block the event loop.
    stem = get_stem(session, user, stem_id)
    peaks = _peaks_of(request, stem.file_path, WebError(
        500, "stem_damaged",
        f"The stored {stem.stem_type} stem cannot be read; run the separation again."))
    return {"stem_id": stem.id, **peaks}


@router.get("/tracks/{track_id}/peaks", response_model=TrackPeaksOut, tags=["tracks"],
            responses={**ONE, **error_responses(500, s500="track_damaged: the stored audio "
                                                "cannot be read")},
            summary="The original track's waveform (the player's original mix)")
def api_track_peaks(request: Request, session: DbSession, user: ApiUser,
                    track_id: str) -> dict[str, Any]:
    track = get_track(session, user, track_id)
    peaks = _peaks_of(request, track.file_path, WebError(
        500, "track_damaged",
        "The stored audio of this track cannot be read; delete the track and upload it again."))
    return {"track_id": track.id, **peaks}


def _peaks_of(request: Request, file_path: str, damaged: WebError) -> dict[str, Any]:
    """The waveform of a stored file; ``damaged`` is raised when it cannot be read."""
    path = resolve_upload(request.app.state.settings, file_path)
    try:
        return stem_peaks(path)
    except InputAudioError:
        raise damaged from None


@router.delete("/jobs/{job_id}", status_code=204, tags=["separations"],
               responses={**ONE, **CHANGE},
               summary="Delete one separation with its stems and files (stops it if running)")
async def api_delete_job(request: Request, user: ApiUser, job_id: str) -> Response:
    await run_in_threadpool(delete_separation, request.app.state.pipeline, user, job_id)
    return Response(status_code=204)


# --- settings -----------------------------------------------------------------------
@router.get("/settings", response_model=SettingsOut, tags=["settings"],
            summary="Your separation defaults (the LALAL.AI key masked)")
def api_settings(session: DbSession, user: ApiUser) -> dict[str, Any]:
    return settings_dict(get_user_settings(session, user))


@router.patch("/settings", response_model=SettingsOut, tags=["settings"], responses=CHANGE,
              summary="Change some of your separation defaults")
def api_update_settings(
    request: Request, session: DbSession, user: ApiUser, body: SettingsIn
) -> dict[str, Any]:
    prefs = get_user_settings(session, user)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("lalalai_api_key") == "":
        changes["lalalai_api_key"] = None
    apply_settings_update(request.app.state.settings, prefs, changes)
    session.commit()
    return settings_dict(prefs)
