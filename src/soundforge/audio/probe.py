"""Look at a file before any work is spent on it, and say clearly what is wrong.

Decoding goes through FFmpeg (PyAV's wheels carry it), so every container and
codec FFmpeg reads works: WAV, FLAC, MP3, OGG/Vorbis, Opus, M4A/AAC, AIFF …
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av

from soundforge.errors import InputAudioError

# FFmpeg's own chatter on stderr would bury our one-line errors; every decoding
# problem that matters is raised and reported by us instead.
av.logging.set_level(av.logging.FATAL)


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    # From the container's header; may be approximate (VBR MP3) or unknown (0).
    duration: float
    codec: str
    container: str

    @property
    def frames(self) -> int:
        return round(self.duration * self.sample_rate)


def check_input_path(path: Path) -> None:
    """Existence, type and size checks that need no decoder."""
    if not path.exists():
        raise InputAudioError(f"{path}: no such file.")
    if path.is_dir():
        raise InputAudioError(f"{path}: is a folder, not an audio file.")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputAudioError(f"{path}: cannot be read ({exc.strerror}).") from None
    if size == 0:
        raise InputAudioError(f"{path}: the file is empty (0 bytes).")


def open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.PermissionError:
        raise InputAudioError(f"{path}: permission denied; cannot read the file.") from None
    except (av.error.InvalidDataError, av.error.EOFError, ValueError) as exc:
        raise InputAudioError(
            f"{path}: not a readable audio file ({_reason(exc)}). "
            "Use WAV, FLAC, MP3, OGG, M4A/AAC or another common audio format."
        ) from None
    except av.error.FFmpegError as exc:
        raise InputAudioError(f"{path}: cannot be opened as audio ({_reason(exc)}).") from None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip().rstrip(".").lower() or type(exc).__name__


def check_riff_complete(path: Path) -> None:
    """A WAV whose data chunk announces more bytes than the file holds was cut
    off (an interrupted copy or download). FFmpeg would quietly decode what is
    there, so the header is checked here."""
    try:
        with path.open("rb") as handle:
            header = handle.read(12)
            if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
                return
            order: Literal["little", "big"] = "little" if header[:4] == b"RIFF" else "big"
            size = path.stat().st_size
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return
                declared = int.from_bytes(chunk[4:8], order)
                if chunk[:4] == b"data":
                    available = size - handle.tell()
                    # 0 and 0xFFFFFFFF mean "unknown" (streamed WAV): nothing to check.
                    if 0 < declared < 0xFFFFFFFF and declared > available:
                        raise InputAudioError(
                            f"{path}: the file is truncated: its header announces "
                            f"{declared} bytes of audio but only {available} are there. "
                            "Re-export or re-download it."
                        )
                    return
                handle.seek(declared + (declared & 1), 1)
    except OSError as exc:
        raise InputAudioError(f"{path}: cannot be read ({exc.strerror}).") from None


def probe(path: Path | str) -> AudioInfo:
    """Describe ``path``'s first audio stream, or raise ``InputAudioError``.

    Decodes the first audio frame too: a file whose header parses but whose data
    does not (a text file named ``.mp3``) is refused here, before any model loads.
    """
    path = Path(path)
    check_input_path(path)
    check_riff_complete(path)
    container = open_container(path)
    try:
        streams = container.streams.audio
        if not streams:
            raise InputAudioError(f"{path}: contains no audio stream.")
        stream = streams[0]
        rate = stream.codec_context.sample_rate or stream.rate or 0
        channels = stream.codec_context.channels or 0
        if rate <= 0 or channels <= 0:
            raise InputAudioError(f"{path}: the audio stream has no sample rate or channels.")
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        first = _first_frame(container, stream, path)
        if first is None:
            raise InputAudioError(f"{path}: contains no audio (zero length).")
        return AudioInfo(
            path=path,
            sample_rate=int(rate),
            channels=int(channels),
            duration=max(duration, 0.0),
            codec=stream.codec_context.name,
            container=container.format.name,
        )
    finally:
        container.close()


def _first_frame(
    container: av.container.InputContainer, stream: av.AudioStream, path: Path
) -> av.AudioFrame | None:
    try:
        for frame in container.decode(stream):
            if frame.samples > 0:
                return frame
    except av.error.FFmpegError as exc:
        raise InputAudioError(
            f"{path}: the audio data is corrupt ({_reason(exc)}); re-export or re-download it."
        ) from None
    return None
