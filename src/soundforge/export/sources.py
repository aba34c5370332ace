"""What an export starts from: the stems of one separation, found in a folder
(what ``soundforge separate`` wrote) or through a job of the web app."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import soundfile as sf

from soundforge.audio.probe import probe
from soundforge.config import Settings
from soundforge.errors import InputAudioError, InvalidOptionError, NotFoundError
from soundforge.library.files import resolve_upload
from soundforge.library.tags import Artwork, TrackTags, read_tags

if TYPE_CHECKING:
    # Only the type: the CLI reads stem folders without loading the database layer.
    from soundforge.db import ProcessingJob

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3")
FOLDER_ORDER = ("drums", "bass", "other", "vocals", "guitar", "piano")


@dataclass(frozen=True)
class StemSet:
    """The stems of one separation, ``{name: file}`` in the engine's order."""

    stems: dict[str, Path]
    track: str
    # The original mix, when known: the NI master track and the tags come from it.
    original: Path | None = None
    tags: TrackTags = field(default_factory=TrackTags)
    model: str = ""
    engine: str = ""
    created: datetime | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.stems)

    def layout(self) -> tuple[int, int, int]:
        """``(sample_rate, channels, frames)`` of the stems (the first one's rate and
        length; the widest channel count, so a stereo stem is never folded)."""
        first = next(iter(self.stems.values()))
        rate, frames = _rate_and_frames(first)
        channels = max(probe(path).channels for path in self.stems.values())
        return rate, min(channels, 2), frames


def _rate_and_frames(path: Path) -> tuple[int, int]:
    # libsndfile knows a WAV's or FLAC's exact length; MP3 headers only estimate it.
    with contextlib.suppress(sf.LibsndfileError, RuntimeError):
        info = sf.info(str(path))
        if info.format in ("WAV", "WAVEX", "FLAC"):
            return info.samplerate, info.frames
    audio = probe(path)
    return audio.sample_rate, audio.frames


def stems_in_folder(folder: Path, original: Path | None = None) -> StemSet:
    """``folder/{stem}.{ext}`` as written by ``soundforge separate``."""
    if not folder.is_dir():
        raise InvalidOptionError(
            f"{folder} is not a folder of stems. Give the folder that `soundforge separate` "
            "wrote (OUTDIR/TRACK) or a job id of the web app."
        )
    found = [
        path for path in folder.iterdir()
        if path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")
    ]
    # Demucs' order first (drums bass other vocals …), then the rest by name.
    found.sort(key=lambda path: (
        FOLDER_ORDER.index(path.stem) if path.stem in FOLDER_ORDER else len(FOLDER_ORDER),
        path.stem,
    ))
    stems = {path.stem: path for path in found}
    if not stems:
        raise InputAudioError(
            f"{folder} holds no stems (.wav, .flac or .mp3 files): separate the track first."
        )
    if original is not None and not original.is_file():
        raise InputAudioError(f"{original}: no such file (the original mix given with --master).")
    tags = read_tags(original) if original is not None else TrackTags()
    return StemSet(stems=stems, track=folder.name, original=original, tags=tags)


def stems_of_job(job: ProcessingJob, settings: Settings) -> StemSet:
    """A completed job's stems, with its track's original mix, tags and cover art.

    Paths come from our own rows and are still checked to stay inside
    ``uploads/`` (``resolve_upload``: a hand-edited row must not export /etc/passwd).
    """
    if job.status != "completed" or not job.stems:
        raise InvalidOptionError(
            f"Job {job.id} has no stems to export (it is {job.status}): "
            "wait until it has completed, or start a new separation."
        )
    stems = {stem.stem_type: _stored(settings, stem.file_path) for stem in job.stems}
    track = job.track
    original = _stored(settings, track.file_path)
    artwork = None
    if track.artwork_path:
        with contextlib.suppress(InputAudioError, OSError):
            data = _stored(settings, track.artwork_path).read_bytes()
            artwork = Artwork(data, track.artwork_mime or "image/jpeg")
    tags = TrackTags(title=track.title, artist=track.artist, album=track.album, artwork=artwork)
    return StemSet(
        stems=stems, track=track.title, original=original, tags=tags,
        model=job.model, engine=job.engine, created=job.created_at,
    )


def _stored(settings: Settings, relative: str) -> Path:
    try:
        return resolve_upload(settings, relative)
    except NotFoundError:
        raise InputAudioError(
            f"A stored file of this separation is missing ({relative}): separate the track again."
        ) from None
