"""Streaming decode: audio arrives in blocks, so a one-hour track never sits in
memory whole. Blocks are float32 arrays shaped ``(channels, frames)``,
converted to the rate and channel count the caller asks for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soxr

from soundforge.audio.probe import AudioInfo, _reason, open_container, probe
from soundforge.errors import InputAudioError

DEFAULT_BLOCK_FRAMES = 1 << 16
# A file that decodes to less than its header announces is treated as
# truncated or damaged rather than silently separated in part. Lossless
# containers know their length exactly; lossy ones (VBR MP3 without a Xing
# header) only estimate it, so they get slack.
LOSSLESS_CODEC_PREFIXES = ("pcm_", "flac", "alac", "wavpack", "tta", "ape")
LOSSLESS_SLACK_SECONDS = 0.02
LOSSY_TOLERANCE = 0.98
LOSSY_SLACK_SECONDS = 0.5


def convert_channels(block: np.ndarray, channels: int) -> np.ndarray:
    """Up-mix mono by copying (as Demucs does), down-mix by averaging."""
    have = block.shape[0]
    if have == channels:
        return block
    if have == 1:
        return np.repeat(block, channels, axis=0)
    if channels == 1:
        return block.mean(axis=0, keepdims=True, dtype=np.float32)
    if have > channels:
        return block[:channels]
    raise ValueError(f"cannot map {have} channels to {channels}")


class Resampler:
    """Streaming, high-quality sample-rate conversion for (channels, frames) blocks."""

    def __init__(self, in_rate: int, out_rate: int, channels: int) -> None:
        self.passthrough = in_rate == out_rate
        self._stream = (
            None
            if self.passthrough
            else soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality="HQ")
        )

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return block
        out = self._stream.resample_chunk(np.ascontiguousarray(block.T), last=last)
        return np.ascontiguousarray(out.T)


class AudioReader:
    """Iterate over a file's audio in blocks; ``frames`` counts what was read
    (at the file's own rate) once iteration is finished."""

    def __init__(
        self,
        path: Path | str,
        sample_rate: int | None = None,
        channels: int | None = None,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        info: AudioInfo | None = None,
    ) -> None:
        self.path = Path(path)
        self.info = info or probe(self.path)
        self.sample_rate = sample_rate or self.info.sample_rate
        self.channels = channels or self.info.channels
        self.block_frames = block_frames
        self.frames = 0  # at the source rate

    def __iter__(self) -> Iterator[np.ndarray]:
        info = self.info
        # FFmpeg down-mixes surround to stereo properly; mono/stereo we map ourselves.
        layout = "stereo" if info.channels > 2 else None
        decoded_channels = 2 if layout else info.channels
        to_float = av.AudioResampler(format="fltp", layout=layout)
        resample = Resampler(info.sample_rate, self.sample_rate, decoded_channels)
        pending: list[np.ndarray] = []
        pending_frames = 0
        self.frames = 0
        container = open_container(self.path)
        try:
            stream = container.streams.audio[0]
            for frame in self._decode(container, stream):
                for converted in to_float.resample(frame):
                    data = converted.to_ndarray().astype(np.float32, copy=False)
                    self.frames += data.shape[1]
                    pending.append(data)
                    pending_frames += data.shape[1]
                if pending_frames >= self.block_frames:
                    block = np.concatenate(pending, axis=1)
                    pending, pending_frames = [], 0
                    out = resample(block)
                    if out.shape[1]:
                        yield convert_channels(out, self.channels)
            for converted in to_float.resample(None):
                data = converted.to_ndarray().astype(np.float32, copy=False)
                self.frames += data.shape[1]
                pending.append(data)
        finally:
            container.close()
        tail = (
            np.concatenate(pending, axis=1)
            if pending
            else np.zeros((decoded_channels, 0), dtype=np.float32)
        )
        out = resample(tail, last=True)
        if out.shape[1]:
            yield convert_channels(out, self.channels)
        self._check_complete()

    def _decode(
        self, container: av.container.InputContainer, stream: av.AudioStream
    ) -> Iterator[av.AudioFrame]:
        try:
            yield from container.decode(stream)
        except av.error.FFmpegError as exc:
            at = self.frames / self.info.sample_rate
            raise InputAudioError(
                f"{self.path}: the audio data is corrupt at {at:.1f} s ({_reason(exc)}); "
                "re-export or re-download the file."
            ) from None

    def _check_complete(self) -> None:
        if self.frames == 0:
            raise InputAudioError(f"{self.path}: contains no audio (zero length).")
        declared = self.info.duration
        decoded = self.frames / self.info.sample_rate
        if self.info.codec.startswith(LOSSLESS_CODEC_PREFIXES):
            shortest = declared - LOSSLESS_SLACK_SECONDS
        else:
            shortest = declared * LOSSY_TOLERANCE - LOSSY_SLACK_SECONDS
        if declared > 0 and decoded < shortest:
            raise InputAudioError(
                f"{self.path}: the file is damaged or truncated: its header announces "
                f"{declared:.1f} s but only {decoded:.1f} s could be decoded. "
                "Re-export or re-download it."
            )

    @property
    def output_frames(self) -> int:
        """Frames at the requested rate that correspond to what was read."""
        return round(self.frames * self.sample_rate / self.info.sample_rate)


def iter_audio(
    path: Path | str,
    sample_rate: int | None = None,
    channels: int | None = None,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> Iterator[np.ndarray]:
    """Blocks of float32 ``(channels, frames)`` audio; see ``AudioReader``."""
    return iter(AudioReader(path, sample_rate, channels, block_frames))


def read_audio(
    path: Path | str, sample_rate: int | None = None, channels: int | None = None
) -> tuple[np.ndarray, AudioInfo]:
    """The whole file as one float32 ``(channels, frames)`` array (for short files
    and tests; the engines stream)."""
    reader = AudioReader(path, sample_rate, channels)
    blocks = list(reader)
    audio = np.concatenate(blocks, axis=1)
    # Resampling can leave the length a sample off; make it exact.
    target = reader.output_frames
    if audio.shape[1] > target:
        audio = audio[:, :target]
    elif audio.shape[1] < target:
        audio = np.pad(audio, ((0, 0), (0, target - audio.shape[1])))
    return audio, reader.info
