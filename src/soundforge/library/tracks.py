"""The track library: import an audio file, look tracks up.

``import_track`` checks the file is decodable audio *before* anything is kept
(the same check the engines make, so a track in the library is always one an
engine can read), copies it under ``uploads/tracks/{track_id}/`` while hashing
it, reads its tags and cover art, then inserts the row; if the insert fails the
files go again.

Deleting a track is ``jobs.deletion.delete_track``: it stops the track's jobs
and tells open pages, so it belongs to the job pipeline. The library depends
only on the database, storage and settings; its callers hand it a
``LibraryStore`` (the job pipeline's ``Pipeline`` is one).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from soundforge.audio.probe import probe
from soundforge.config import Settings
from soundforge.db.accounts import user_id_of
from soundforge.db.base import is_uuid, new_uuid
from soundforge.db.models import Track, User
from soundforge.db.session import Database
from soundforge.errors import InputAudioError, NotFoundError, OutputError
from soundforge.library.files import relative_to_uploads, remove_tree, tracks_dir
from soundforge.library.tags import read_tags
from soundforge.storage.staging import describe_os_error, staging_for

log = logging.getLogger(__name__)

_SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,6}$")
_CONTAINER_SUFFIX = {
    "wav": ".wav", "flac": ".flac", "mp3": ".mp3", "ogg": ".ogg", "aiff": ".aiff",
    "mov,mp4,m4a,3gp,3g2,mj2": ".m4a", "aac": ".aac", "matroska,webm": ".webm",
}
_CHUNK = 1 << 20


class LibraryStore(Protocol):
    """What the library needs of its caller: the settings and the database."""

    settings: Settings
    db: Database


def _suffix(filename: str, container: str) -> str:
    suffix = "." + filename.rpartition(".")[2].lower() if "." in filename else ""
    if _SAFE_SUFFIX.match(suffix):
        return suffix
    return _CONTAINER_SUFFIX.get(container, ".audio")


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_filename(name: str | None) -> str:
    """The name a user gave a file, kept whole as text: safe to store and show.

    A name is never joined to a folder here (files are stored as
    ``tracks/{id}/original.{ext}``), so ``/`` and ``\\`` are kept as the
    characters they are: cutting at them lost most of a name such as
    ``AC/DC - Back in Black.mp3``. Control and bidirectional-override
    characters, which could disguise a name, become spaces."""
    text = " ".join(_UNPRINTABLE.sub(" ", name or "").split())
    return text[:512] or "upload"


def _title_from_filename(filename: str) -> str:
    name = clean_filename(filename)
    stem, dot, extension = name.rpartition(".")
    if dot and stem.strip() and _SAFE_SUFFIX.match("." + extension.lower()):
        name = stem
    return name.replace("_", " ").strip()[:512] or "Untitled"


def _copy_hashing(source: Path, target: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as src, open(target, "wb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except OSError as exc:
        raise OutputError(describe_os_error(exc, target.parent)) from None
    return digest.hexdigest(), size


def import_track(
    store: LibraryStore,
    user: User | int,
    source: Path | str,
    *,
    filename: str | None = None,
    title: str | None = None,
    move: bool = False,
) -> Track:
    """Add ``source`` to the user's library and return the new ``Track``.

    ``filename`` is the name the user gave the file (an upload's temp file has
    none worth showing); ``move=True`` removes ``source`` once it is stored.
    Raises ``InputAudioError`` (not audio, empty, corrupt, too large) with a
    message that names ``filename``, or ``OutputError`` (disk full …).
    """
    settings = store.settings
    source = Path(source)
    display = clean_filename(filename or source.name)
    try:
        info = probe(source)
    except InputAudioError as exc:
        raise InputAudioError(exc.message.replace(str(source), display)) from None
    size = source.stat().st_size
    limit = settings.max_upload_mb * 1024 * 1024
    if size > limit:
        raise InputAudioError(
            f"{display}: the file is {size / 1048576:.0f} MB, more than the "
            f"{settings.max_upload_mb} MB limit (SOUNDFORGE_MAX_UPLOAD_MB)."
        )
    tags = read_tags(source)
    track_id = new_uuid()
    folder = tracks_dir(settings) / track_id
    # Write beside the final folder and rename it in at the end: a crash while
    # copying leaves only a staging folder, never a half-copied track.
    with staging_for(folder) as staging:
        original = staging.file("original" + _suffix(display, info.container))
        content_hash, file_size = _copy_hashing(source, original)
        artwork_name = None
        if tags.artwork is not None:
            artwork_name = "cover" + tags.artwork.extension
            try:
                staging.file(artwork_name).write_bytes(tags.artwork.data)
            except OSError as exc:
                raise OutputError(describe_os_error(exc, staging.path)) from None
        staging.commit()
    track = Track(
        id=track_id,
        user_id=user_id_of(user),
        title=(title or tags.title or _title_from_filename(display))[:512],
        artist=tags.artist,
        album=tags.album,
        duration=info.duration or tags.duration or 0.0,
        sample_rate=info.sample_rate,
        channels=info.channels,
        codec=info.codec,
        original_filename=display[:512],
        file_path=relative_to_uploads(settings, folder / original.name),
        file_size=file_size,
        content_hash=content_hash,
        artwork_path=relative_to_uploads(settings, folder / artwork_name) if artwork_name else None,
        artwork_mime=tags.artwork.mime if tags.artwork is not None else None,
    )
    try:
        with store.db.transaction() as session:
            session.add(track)
    except BaseException:
        remove_tree(folder)
        raise
    if move:
        try:
            source.unlink()
        except OSError as exc:
            log.warning("imported %s but could not remove it: %s", source, exc)
    return track


def get_track(session: Session, user: User | int, track_id: str) -> Track:
    """The user's track, or NotFoundError (also for another user's track)."""
    if not is_uuid(track_id):
        raise NotFoundError.of("track")
    track = session.scalar(
        select(Track).where(Track.id == track_id, Track.user_id == user_id_of(user))
    )
    if track is None:
        raise NotFoundError.of("track")
    return track


def list_tracks(
    session: Session, user: User | int, search: str | None = None, order: str = "newest"
) -> list[Track]:
    """The user's tracks; ``search`` matches title, artist or album (case-insensitive);
    ``order`` is ``newest``, ``oldest``, ``title`` or ``artist``."""
    query = select(Track).where(Track.user_id == user_id_of(user))
    if search:
        pattern = f"%{search.strip().lower()}%"
        query = query.where(
            or_(
                func.lower(Track.title).like(pattern),
                func.lower(func.coalesce(Track.artist, "")).like(pattern),
                func.lower(func.coalesce(Track.album, "")).like(pattern),
            )
        )
    orders = {
        "newest": (Track.created_at.desc(),),
        "oldest": (Track.created_at.asc(),),
        "title": (Track.title.asc(), Track.created_at.desc()),
        "artist": (Track.artist.asc(), Track.title.asc()),
    }
    if order not in orders:
        raise ValueError(f"unknown order {order!r}")
    return list(session.scalars(query.order_by(*orders[order])).all())
