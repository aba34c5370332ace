"""Exports of one separation, for the player's buttons and for scripts:

* ``GET /export/nistems/{job_id}`` – an NI Stems file (``.stem.mp4``) for DJ software;
* ``GET /export/mix/{job_id}`` – the stems mixed to one file, as the player plays them.

Both are made by ``soundforge.export`` (the CLI's code) into a private folder
under the data directory, sent, and deleted once sent. Bad parameters answer
422 ``invalid_option`` with a message that says what to change.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from soundforge.export.mixing import render_mix, requested_state
from soundforge.export.nistems import STEM_SUFFIX, parse_mapping, write_ni_stems
from soundforge.export.sources import StemSet, stems_of_job
from soundforge.filenames import content_disposition, safe_filename
from soundforge.jobs.service import get_job
from soundforge.web.deps import ApiUser, DbSession
from soundforge.web.routers.files import MEDIA_TYPES
from soundforge.web.schemas import error_responses

router = APIRouter(tags=["files"])

NI_MEDIA_TYPE = "audio/mp4"
STALE_SECONDS = 24 * 3600


def _source(request: Request, session: DbSession, user: ApiUser, job_id: str) -> StemSet:
    job = get_job(session, user, job_id)
    source = stems_of_job(job, request.app.state.settings)
    # The render takes seconds: end the transaction now so it holds no
    # database connection meanwhile (the StemSet is plain data).
    session.commit()
    return source


def _work_dir(request: Request) -> Path:
    root = Path(request.app.state.settings.data_dir) / "exports"
    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale(root)
    return Path(tempfile.mkdtemp(prefix="export-", dir=root))


def _sweep_stale(root: Path) -> None:
    """A server killed while rendering or sending leaves its folder behind; one
    untouched for a day is no longer being sent."""
    cutoff = time.time() - STALE_SECONDS
    for folder in root.glob("export-*"):
        with contextlib.suppress(OSError):
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


def _send(path: Path, work: Path, name: str, media_type: str) -> FileResponse:
    return FileResponse(
        path, media_type=media_type,
        headers={"Content-Disposition": content_disposition(name)},
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


@router.get(
    "/export/nistems/{job_id}",
    summary="Download a separation as an NI Stems file for DJ software",
    response_class=FileResponse,
    responses={
        200: {"content": {NI_MEDIA_TYPE: {}}},
        **error_responses(
            404, 422,
            s404="not_found: no such job, or not yours",
            s422="invalid_option: a bad codec or stem mapping, or a job without stems",
        ),
    },
)
def export_ni_stems(
    request: Request,
    session: DbSession,
    user: ApiUser,
    job_id: str,
    codec: str = Query("aac", description="aac (256 kbit/s) or alac (lossless)"),
    stem_map: str | None = Query(
        None, description='Slots to change, e.g. "other=other+guitar,vocals=vocals+piano"'
    ),
) -> Response:
    source = _source(request, session, user, job_id)
    mapping = parse_mapping(stem_map, source.names)
    work = _work_dir(request)
    try:
        name = safe_filename(source.track) + STEM_SUFFIX
        result = write_ni_stems(source, work / name, codec.lower(), mapping)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _send(result.path, work, name, NI_MEDIA_TYPE)


@router.get(
    "/export/mix/{job_id}",
    summary="Download the stems mixed to one file, as the player plays them",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/wav": {}, "audio/flac": {}, "audio/mpeg": {}}},
        **error_responses(
            404, 422,
            s404="not_found: no such job, or not yours",
            s422="invalid_option: a stem the job lacks, a volume out of range, a silent mix …",
        ),
    },
)
def export_mix(
    request: Request,
    session: DbSession,
    user: ApiUser,
    job_id: str,
    mix: str | None = Query(None, description='Volumes 0–1, e.g. "vocals=0,drums=0.5"'),
    mute: str | None = Query(None, description="Muted stems, comma-separated"),
    solo: str | None = Query(None, description="Soloed stems (solo beats mute)"),
    master: float = Query(1.0, description="Master volume, 0–1"),
    preset: str | None = Query(None, description="instrumental, acappella, drumless, bassless"),
    format: str = Query("wav", description="wav, flac or mp3"),
) -> Response:
    source = _source(request, session, user, job_id)
    fmt = format.lower()
    state = requested_state(
        source.names, preset=preset, mix=mix, mute=mute, solo=solo, master=master, fmt=fmt
    )
    label = preset.lower() if preset else "mix"
    name = f"{safe_filename(source.track)} ({label}).{fmt}"
    work = _work_dir(request)
    try:
        render_mix(source, state, work / name, fmt)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _send(work / name, work, name, MEDIA_TYPES[fmt])
