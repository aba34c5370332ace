"""Uploads into the library: one file at a time, checked before it is kept."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from soundforge.db import Track, User
from soundforge.errors import InputAudioError, SoundForgeError
from soundforge.jobs.pipeline import Pipeline
from soundforge.library.files import hide_server_paths
from soundforge.library.tracks import clean_filename, import_track
from soundforge.storage.temporary import incoming_dir
from soundforge.web.errors import TooLarge, WebError

MAX_FILES_PER_REQUEST = 50
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,6}$")


@dataclass
class UploadOutcome:
    filename: str
    track: Track | None = None
    error: SoundForgeError | WebError | None = None


async def upload_files(request: Request) -> list[UploadFile]:
    form = await request.form(max_files=MAX_FILES_PER_REQUEST, max_fields=20)
    files = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
    files += [item for item in form.getlist("file") if isinstance(item, UploadFile)]
    files = [item for item in files if item.filename or (item.size or 0) > 0]
    if not files:
        raise InputAudioError("No file was sent: choose one or more audio files to upload.")
    return files


def _store(pipeline: Pipeline, user: User, upload: UploadFile) -> Track:
    settings = pipeline.settings
    limit = settings.max_upload_mb * 1024 * 1024
    name = clean_filename(upload.filename)
    if upload.size is not None and upload.size > limit:
        raise TooLarge(settings.max_upload_mb)
    incoming = incoming_dir(settings.data_dir)
    incoming.mkdir(parents=True, exist_ok=True)
    suffix = "." + name.rpartition(".")[2] if "." in name else ""
    fd, tmp_name = tempfile.mkstemp(
        prefix="upload-", suffix=suffix if _SUFFIX.match(suffix) else "", dir=incoming
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, out, 1 << 20)
        if tmp.stat().st_size > limit:
            raise TooLarge(settings.max_upload_mb)
        return import_track(pipeline, user, tmp, filename=name, move=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


async def import_uploads(request: Request, user: User) -> list[UploadOutcome]:
    """Import every file of the request; each one succeeds or fails on its own."""
    pipeline: Pipeline = request.app.state.pipeline
    outcomes: list[UploadOutcome] = []
    for upload in await upload_files(request):
        outcome = UploadOutcome(filename=clean_filename(upload.filename))
        try:
            outcome.track = await run_in_threadpool(_store, pipeline, user, upload)
        except (SoundForgeError, WebError) as exc:
            # Shown to the client: the temporary file's path is not theirs to see.
            exc.message = hide_server_paths(exc.message, pipeline.settings)
            outcome.error = exc
        finally:
            await upload.close()
        outcomes.append(outcome)
    return outcomes
