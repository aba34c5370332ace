"""Title, artist, album and cover art from a file's own tags (mutagen).

Every format mutagen knows is read: ID3 (MP3, WAV, AIFF), MP4/M4A atoms,
Vorbis comments (FLAC, OGG, Opus) with their embedded pictures; text tags
mutagen does not read (a WAV's RIFF INFO chunk, …) come from FFmpeg's metadata. Tags are
untrusted input: anything unreadable is simply absent, and cover art is only
kept when Pillow can decode it, re-encoded when it is not a JPEG or PNG, and
scaled down when it is huge (a 20-megapixel scan makes a poor card image).
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import mutagen
from PIL import Image

log = logging.getLogger(__name__)

MAX_ART_BYTES = 16 * 1024 * 1024
MAX_ART_SIDE = 1200
# ID3/FLAC picture type 3 = front cover.
FRONT_COVER = 3


@dataclass(frozen=True)
class Artwork:
    data: bytes
    mime: str  # image/jpeg or image/png

    @property
    def extension(self) -> str:
        return ".png" if self.mime == "image/png" else ".jpg"


@dataclass(frozen=True)
class TrackTags:
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    duration: float | None = None
    artwork: Artwork | None = None


def read_tags(path: Path) -> TrackTags:
    """Whatever the file says about itself; never raises for bad tags."""
    try:
        audio = mutagen.File(str(path))
    except Exception as exc:  # mutagen raises many types for broken files
        log.info("no tags read from %s: %s", path, exc)
        return TrackTags()
    if audio is None:
        return TrackTags()
    duration = None
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        duration = float(audio.info.length) or None
    title, artist, album = _text_tags(path)
    if not (title and artist and album):
        # mutagen knows no RIFF INFO (WAV's own tags) and a few other
        # containers' metadata; FFmpeg reads them all: it fills the gaps.
        found = _ffmpeg_text_tags(path)
        title, artist, album = title or found[0], artist or found[1], album or found[2]
    raw = _raw_artwork(audio)
    return TrackTags(title, artist, album, duration, _clean_artwork(raw) if raw else None)


def _text_tags(path: Path) -> tuple[str | None, str | None, str | None]:
    try:
        easy = mutagen.File(str(path), easy=True)
    except Exception:
        return None, None, None
    if easy is None or easy.tags is None:
        return None, None, None

    def first(key: str) -> str | None:
        try:
            values = easy.tags.get(key)
        except (KeyError, ValueError):
            return None
        if not values:
            return None
        text = str(values[0] if isinstance(values, list) else values).strip()
        return text[:512] or None

    return first("title"), first("artist"), first("album")


def _ffmpeg_text_tags(path: Path) -> tuple[str | None, str | None, str | None]:
    """Title, artist and album as FFmpeg reads them (container, then the first
    audio stream): RIFF INFO (INAM, IART, IPRD), AIFF, Matroska, ASF …"""
    try:
        with av.open(str(path), mode="r") as container:
            sources = [dict(container.metadata)]
            sources += [dict(stream.metadata) for stream in container.streams.audio[:1]]
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        log.info("no FFmpeg metadata read from %s: %s", path, exc)
        return None, None, None

    def first(*keys: str) -> str | None:
        for metadata in sources:
            lowered = {str(k).lower(): v for k, v in metadata.items()}
            for key in keys:
                text = str(lowered.get(key) or "").strip()
                if text:
                    return text[:512]
        return None

    return first("title"), first("artist", "album_artist"), first("album")


def _raw_artwork(audio: Any) -> bytes | None:
    """The front cover if there is one, else the first picture."""
    pictures: list[tuple[int, bytes]] = []
    tags = getattr(audio, "tags", None)
    # FLAC keeps pictures in their own metadata blocks.
    for picture in getattr(audio, "pictures", None) or []:
        pictures.append((picture.type, picture.data))
    if tags is not None:
        # ID3 (MP3, WAV, AIFF): APIC frames.
        getall = getattr(tags, "getall", None)
        if callable(getall):
            with contextlib.suppress(Exception):
                for frame in getall("APIC"):
                    pictures.append((int(frame.type), frame.data))
        # MP4/M4A: the covr atom.
        with contextlib.suppress(Exception):
            for cover in tags.get("covr", []) or []:
                pictures.append((FRONT_COVER, bytes(cover)))
        # Ogg Vorbis/Opus: base64 FLAC picture blocks in a comment.
        with contextlib.suppress(Exception):
            from mutagen.flac import Picture

            for encoded in tags.get("metadata_block_picture", []) or []:
                picture = Picture(base64.b64decode(encoded))
                pictures.append((picture.type, picture.data))
    if not pictures:
        return None
    pictures.sort(key=lambda item: item[0] != FRONT_COVER)
    return pictures[0][1]


def _clean_artwork(data: bytes) -> Artwork | None:
    if not data or len(data) > MAX_ART_BYTES:
        return None
    try:
        with Image.open(io.BytesIO(data)) as probe_image:
            probe_image.verify()  # structure check without decoding all pixels
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            if fmt in ("JPEG", "PNG") and max(image.size) <= MAX_ART_SIDE:
                return Artwork(data, "image/jpeg" if fmt == "JPEG" else "image/png")
            image.thumbnail((MAX_ART_SIDE, MAX_ART_SIDE))
            out = io.BytesIO()
            # PNG stays PNG (logos, transparency); anything else becomes a JPEG.
            if fmt == "PNG" or image.mode in ("RGBA", "LA", "P"):
                image.save(out, "PNG", optimize=True)
                return Artwork(out.getvalue(), "image/png")
            image.convert("RGB").save(out, "JPEG", quality=88)
            return Artwork(out.getvalue(), "image/jpeg")
    except Exception as exc:  # Pillow raises many types for broken images (and bombs)
        log.info("ignoring unreadable cover art: %s", exc)
        return None
