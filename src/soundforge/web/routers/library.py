"""The library (dashboard): track cards, upload, delete, album art."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import distinct, func, select
from starlette.concurrency import run_in_threadpool

from soundforge.db import ProcessingJob, Stem, Track
from soundforge.errors import NotFoundError
from soundforge.jobs.deletion import delete_track
from soundforge.library.files import resolve_upload
from soundforge.library.tracks import get_track, list_tracks
from soundforge.web.art import placeholder_svg
from soundforge.web.deps import Csrf, DbSession, PageUser
from soundforge.web.errors import WebError, error_body, status_for, wants_json
from soundforge.web.forms import separate_form_context
from soundforge.web.ingest import import_uploads
from soundforge.web.pages import flash, redirect, render
from soundforge.web.resources import TrackOut

router = APIRouter(tags=["pages"], include_in_schema=False)

SORT_OPTIONS = (
    ("newest", "Newest first"),
    ("oldest", "Oldest first"),
    ("title", "Title A–Z"),
    ("artist", "Artist A–Z"),
)


@router.get("/")
def library(
    request: Request, session: DbSession, user: PageUser, q: str = "", sort: str = "newest"
) -> Response:
    if sort not in dict(SORT_OPTIONS):
        sort = "newest"
    query = q.strip()[:200]
    tracks = list_tracks(session, user, query or None, sort)
    total = session.scalar(select(func.count()).select_from(Track).where(Track.user_id == user.id))
    # The newest job of each track, for the live status on its card.
    latest: dict[str, ProcessingJob] = {}
    for job in session.scalars(
        select(ProcessingJob)
        .where(ProcessingJob.user_id == user.id)
        .order_by(ProcessingJob.created_at.desc())
    ):
        latest.setdefault(job.track_id, job)
    stem_counts = dict(
        session.execute(
            select(Stem.track_id, func.count(distinct(Stem.stem_type)))
            .join(Track, Track.id == Stem.track_id)
            .where(Track.user_id == user.id)
            .group_by(Stem.track_id)
        ).all()
    )
    settings = request.app.state.settings
    context = {
        "tracks": tracks,
        "total": total or 0,
        "query": query,
        "sort": sort,
        "sort_options": SORT_OPTIONS,
        "latest_jobs": latest,
        "stem_counts": stem_counts,
        "max_upload_mb": settings.max_upload_mb,
        "max_upload_bytes": settings.max_upload_mb * 1024 * 1024,
    }
    context.update(separate_form_context(session, user, settings))
    return render(request, "library.html", context, user=user)


@router.post("/tracks/upload", dependencies=[Csrf])
async def upload(request: Request, user: PageUser) -> Response:
    outcomes = await import_uploads(request, user)
    added = [o for o in outcomes if o.track is not None]
    failed = [o for o in outcomes if o.error is not None]
    if wants_json(request):
        if not added:
            error = failed[0].error
            assert error is not None
            status = error.status if isinstance(error, WebError) else status_for(error)
            return JSONResponse(error_body(error.code, error.message), status_code=status)
        return JSONResponse(
            {
                "tracks": [TrackOut.from_row(o.track).json_dict()
                           for o in added if o.track is not None],
                "errors": [
                    {"filename": o.filename, "code": o.error.code, "message": o.error.message}
                    for o in failed
                    if o.error is not None
                ],
            },
            status_code=201,
        )
    for outcome in failed:
        assert outcome.error is not None
        flash(request, "error", outcome.error.message)
    if added:
        names = ", ".join(f"“{o.track.title}”" for o in added[:3] if o.track is not None)
        more = f" and {len(added) - 3} more" if len(added) > 3 else ""
        flash(request, "ok", f"Added {names}{more} to your library.")
    return redirect("/")


@router.post("/tracks/{track_id}/delete", dependencies=[Csrf])
async def delete(request: Request, user: PageUser, track_id: str) -> Response:
    pipeline = request.app.state.pipeline
    with pipeline.db.session() as session:
        title = get_track(session, user, track_id).title
    await run_in_threadpool(delete_track, pipeline, user, track_id)
    flash(request, "ok", f"Deleted “{title}” and its stems.")
    referer = request.headers.get("referer", "")
    # From the track's own page there is nothing to go back to.
    return redirect("/" if f"/tracks/{track_id}" in referer else (_same_site(referer) or "/"))


def _same_site(referer: str) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(referer)
    if not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


@router.get("/tracks/{track_id}/artwork")
def artwork(request: Request, session: DbSession, user: PageUser, track_id: str) -> Response:

    from fastapi.responses import FileResponse

    track = get_track(session, user, track_id)
    headers = {"Cache-Control": "private, max-age=86400"}
    if track.artwork_path:
        try:
            path = resolve_upload(request.app.state.settings, track.artwork_path)
            return FileResponse(path, media_type=track.artwork_mime or "image/jpeg",
                                headers=headers)
        except NotFoundError:
            pass  # the cover file is gone: fall back to the placeholder
    return Response(placeholder_svg(track.id, track.title), media_type="image/svg+xml",
                    headers=headers)
