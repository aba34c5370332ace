"""Stem writers: WAV (16-bit, 24-bit, float), FLAC and MP3, fed block by block.

A writer takes blocks at the model's rate and writes them at the rate asked for
(by default the input's, so stems line up sample for sample with the original),
converting channels on the way. ``finish(frames)`` makes the length exact.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from pathlib import Path
from typing import BinaryIO

import lameenc
import numpy as np
import soundfile as sf

from soundforge.audio.reader import Resampler, convert_channels
from soundforge.errors import InvalidOptionError, OutputError
from soundforge.storage.staging import describe_os_error

EXTENSIONS = {"wav": "wav", "flac": "flac", "mp3": "mp3"}
WAV_SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}
MP3_MAX_RATE = 48000
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Frames kept back so the length can be made exact once the total is known.
HOLD_BACK = 8192


def stem_filename(stem: str, fmt: str) -> str:
    return f"{stem}.{EXTENSIONS[fmt]}"


def output_rate_for(fmt: str, wanted: int) -> int:
    """MP3 tops out at 48 kHz: a 96 kHz source gets 48 kHz MP3 stems."""
    if fmt == "mp3" and wanted not in MP3_RATES:
        return min(MP3_RATES, key=lambda rate: (rate < wanted, abs(rate - wanted)))
    return wanted


class StemWriter:
    def __init__(
        self,
        path: Path,
        fmt: str,
        sample_rate: int,
        channels: int,
        source_rate: int,
        source_channels: int,
        wav_depth: str = "16",
        mp3_bitrate: int = 320,
    ) -> None:
        if fmt not in EXTENSIONS:
            raise InvalidOptionError(f"Unknown output format {fmt!r}: use wav, flac or mp3.")
        if fmt == "wav" and wav_depth not in WAV_SUBTYPES:
            raise InvalidOptionError(f"Unknown WAV depth {wav_depth!r}: use 16, 24 or float.")
        self.path = path
        self.fmt = fmt
        self.sample_rate = output_rate_for(fmt, sample_rate)
        self.channels = channels
        self.frames_written = 0
        self._source_channels = source_channels
        self._resample = Resampler(source_rate, self.sample_rate, source_channels)
        self._held = np.zeros((channels, 0), dtype=np.float32)
        self._sf: sf.SoundFile | None = None
        self._mp3: lameenc.Encoder | None = None
        self._mp3_file: BinaryIO | None = None
        try:
            if fmt == "mp3":
                encoder = lameenc.Encoder()
                encoder.set_bit_rate(mp3_bitrate)
                encoder.set_in_sample_rate(self.sample_rate)
                encoder.set_channels(channels)
                encoder.set_quality(2)
                self._mp3 = encoder
                self._mp3_file = open(path, "wb")  # noqa: SIM115 - closed in finish()
            else:
                subtype = WAV_SUBTYPES[wav_depth] if fmt == "wav" else "PCM_24"
                if fmt == "flac" and wav_depth == "16":
                    subtype = "PCM_16"
                self._sf = sf.SoundFile(
                    str(path), "w", samplerate=self.sample_rate, channels=channels,
                    format=fmt.upper(), subtype=subtype,
                )
        except OSError as exc:
            raise OutputError(describe_os_error(exc, path)) from None
        except sf.LibsndfileError as exc:
            raise self._write_error(exc) from None

    def write(self, block: np.ndarray) -> None:
        """Append ``(source_channels, n)`` float32 audio at the source rate."""
        out = convert_channels(self._resample(block), self.channels)
        self._held = np.concatenate([self._held, out], axis=1)
        if self._held.shape[1] > HOLD_BACK:
            cut = self._held.shape[1] - HOLD_BACK
            self._emit(self._held[:, :cut])
            self._held = self._held[:, cut:]

    def finish(self, total_frames: int | None = None) -> Path:
        """Flush, make the file exactly ``total_frames`` long (at the output rate)
        when given, and close it."""
        tail = convert_channels(
            self._resample(np.zeros((self._source_channels, 0), np.float32), last=True),
            self.channels,
        )
        rest = np.concatenate([self._held, tail], axis=1)
        self._held = rest[:, :0]
        if total_frames is not None:
            need = total_frames - self.frames_written
            if need < 0:
                need = 0
            if rest.shape[1] > need:
                rest = rest[:, :need]
            elif rest.shape[1] < need:
                rest = np.pad(rest, ((0, 0), (0, need - rest.shape[1])))
        self._emit(rest)
        self._close()
        return self.path

    def abort(self) -> None:
        """Close without finishing (the staging folder is discarded anyway)."""
        with contextlib.suppress(Exception):  # best effort on an already failing path
            self._close()

    def _emit(self, block: np.ndarray) -> None:
        if block.shape[1] == 0:
            return
        try:
            if self._sf is not None:
                data = block.T
                if self._sf.subtype != "FLOAT":
                    data = np.clip(data, -1.0, 1.0)
                self._sf.write(np.ascontiguousarray(data))
            elif self._mp3 is not None and self._mp3_file is not None:
                pcm = (np.clip(block.T, -1.0, 1.0) * 32767.0).astype("<i2")
                self._mp3_file.write(self._mp3.encode(np.ascontiguousarray(pcm).tobytes()))
        except OSError as exc:
            raise OutputError(describe_os_error(exc, self.path)) from None
        except sf.LibsndfileError as exc:
            raise self._write_error(exc) from None
        self.frames_written += block.shape[1]

    def _close(self) -> None:
        try:
            if self._sf is not None:
                self._sf.close()
                self._sf = None
            if self._mp3 is not None and self._mp3_file is not None:
                self._mp3_file.write(self._mp3.flush())
                self._mp3_file.close()
                self._mp3 = None
                self._mp3_file = None
        except OSError as exc:
            raise OutputError(describe_os_error(exc, self.path)) from None
        except sf.LibsndfileError as exc:
            raise self._write_error(exc) from None

    def _write_error(self, exc: Exception) -> OutputError:
        # libsndfile reports ENOSPC as a generic "System error": check the disk.
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            free = -1
        if 0 <= free < 1 << 20:
            return OutputError(describe_os_error(OSError(errno.ENOSPC, "No space"), self.path))
        return OutputError(f"Cannot write {self.path}: {exc}.")
