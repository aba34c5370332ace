"""Stem files and exports, the seed's routes exactly:

* ``GET /files/stems/{job_id}/{file}`` – a stem, to its owner (the player uses it);
* ``GET /export/stem/{stem_id}`` – one stem as a download;
* ``GET /export/stems/{track_id}`` – all of a track's stems as a streamed ZIP.

A file is served only if a ``Stem`` row of the user's own job names it: the
URL's ``{file}`` is compared with stored paths and never joined to a
directory, so ``../`` (plain or percent-encoded) has nothing to climb.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy import select

from soundforge.config import Settings
from soundforge.db import ProcessingJob, Stem, Track
from soundforge.db.accounts import get_user_settings
from soundforge.errors import NotFoundError
from soundforge.filenames import content_disposition, safe_filename
from soundforge.jobs.service import get_job, get_stem
from soundforge.library.files import resolve_upload
from soundforge.library.tracks import get_track
from soundforge.web.deps import ApiUser, DbSession
from soundforge.web.errors import NotFound
from soundforge.web.export_names import templated_zip_entries
from soundforge.web.schemas import error_responses
from soundforge.web.zipstream import stream_zip

router = APIRouter(tags=["files"], responses=error_responses(401, 404))

MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}


def stem_download_name(track: Track, stem: Stem) -> str:
    return f"{safe_filename(track.title)} - {stem.stem_type}.{stem.format}"


@router.get(
    "/files/stems/{job_id}/{file}",
    summary="A stem file of one of your separations (for playback)",
    response_class=FileResponse,
)
def stem_file(
    request: Request, session: DbSession, user: ApiUser, job_id: str, file: str
) -> Response:
    job = get_job(session, user, job_id)
    stem = session.scalar(
        select(Stem).where(Stem.job_id == job.id, Stem.file_path == f"stems/{job.id}/{file}")
    )
    if stem is None:
        raise NotFound("stem")
    path = resolve_upload(request.app.state.settings, stem.file_path)
    # Range requests are honoured by FileResponse, so players can seek.
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(stem.format, "application/octet-stream"),
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.get(
    "/files/tracks/{track_id}/audio",
    summary="The original audio of one of your tracks (the player's original mix)",
    response_class=FileResponse,
)
def track_audio(request: Request, session: DbSession, user: ApiUser, track_id: str) -> Response:
    track = get_track(session, user, track_id)
    path = resolve_upload(request.app.state.settings, track.file_path)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type,
                        headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/export/stem/{stem_id}",
    summary="Download one stem",
    response_class=FileResponse,
)
def export_stem(request: Request, session: DbSession, user: ApiUser, stem_id: int) -> Response:
    stem = get_stem(session, user, stem_id)
    track = session.get(Track, stem.track_id)
    if track is None:
        raise NotFound("stem")
    path = resolve_upload(request.app.state.settings, stem.file_path)
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(stem.format, "application/octet-stream"),
        # Both forms: a plain name for old clients, the UTF-8 one for the rest.
        headers={"Content-Disposition": content_disposition(stem_download_name(track, stem))},
    )


def zip_entries(
    session: DbSession,
    track: Track,
    settings: Settings,
    jobs: list[ProcessingJob] | None = None,
    template: str | None = None,
) -> list[tuple[str, Path]]:
    """``{title}/{engine}-{model}-{date}/{stem}.{ext}`` for the stems of ``jobs``
    (default: every completed job of the track), or the names the user's
    file-name template gives them."""
    if jobs is None:
        jobs = list(session.scalars(
            select(ProcessingJob)
            .where(ProcessingJob.track_id == track.id, ProcessingJob.status == "completed")
            .order_by(ProcessingJob.created_at)
        ).all())
    if template:
        return templated_zip_entries(template, track, jobs, settings)
    base = safe_filename(track.title)
    entries: list[tuple[str, Path]] = []
    used: set[str] = set()
    for job in jobs:
        folder = separation_folder(job)
        while folder in used:
            folder += "-2"
        used.add(folder)
        for stem in job.stems:
            try:
                path = resolve_upload(settings, stem.file_path)
            except NotFoundError:
                continue  # a file removed behind our back: export what is there
            entries.append((f"{base}/{folder}/{Path(stem.file_path).name}", path))
    return entries


def separation_folder(job: ProcessingJob) -> str:
    return f"{job.engine}-{safe_filename(job.model, 'model')}-" + job.created_at.strftime(
        "%Y%m%d-%H%M%S")


def _zip_response(entries: list[tuple[str, Path]], name: str) -> Response:
    return StreamingResponse(
        stream_zip(entries),
        media_type="application/zip",
        headers={"Content-Disposition": content_disposition(name)},
    )


@router.get(
    "/export/jobs/{job_id}",
    summary="Download the stems of one separation as a ZIP (streamed)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}},
        **error_responses(404, 422, s404="not_found: no such separation, not yours, or "
                          "not finished", s422="invalid_option: your file-name template "
                          "gives two files the same name"),
    },
)
def export_job_stems(request: Request, session: DbSession, user: ApiUser, job_id: str) -> Response:
    job = get_job(session, user, job_id)
    track = session.get(Track, job.track_id)
    template = get_user_settings(session, user).filename_template
    entries = zip_entries(session, track, request.app.state.settings, [job], template) if (
        track is not None and job.status == "completed") else []
    if track is None or not entries:
        raise NotFound("finished separation")
    return _zip_response(entries, f"{safe_filename(track.title)} - {separation_folder(job)}.zip")


@router.get(
    "/export/stems/{track_id}",
    summary="Download all stems of a track as one ZIP (streamed)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}},
        **error_responses(
            404, 422,
            s404="not_found: no such track, not yours, or no stems yet",
            s422="invalid_option: your file-name template gives two files the same name",
        ),
    },
)
def export_track_stems(
    request: Request, session: DbSession, user: ApiUser, track_id: str
) -> Response:
    track = get_track(session, user, track_id)
    template = get_user_settings(session, user).filename_template
    entries = zip_entries(session, track, request.app.state.settings, template=template)
    if not entries:
        raise NotFound("set of stems")
    return _zip_response(entries, f"{safe_filename(track.title)} - stems.zip")

