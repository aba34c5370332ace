"""Stems to export, and readers that are not our own code: the ffmpeg and
ffprobe programs (Debian's ffmpeg package), stempeg and mutagen's atom parser;
and the ``soundforge`` command run in this process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.cli import CliRun, run_cli

RATE = 44100
# One tone per stem, so a stem in the wrong place or shifted is obvious.
FREQUENCIES = {"drums": 110.0, "bass": 55.0, "other": 440.0, "vocals": 880.0,
               "guitar": 330.0, "piano": 660.0, "no_vocals": 220.0}


def soundforge(*args: str | Path, env: dict[str, str] | None = None) -> CliRun:
    """The ``soundforge`` command in this process (see ``tests/support/cli.py``)."""
    return run_cli(*args, env=env)


def run_in(folder: Path, *args: str | Path) -> CliRun:
    """``soundforge`` run from ``folder`` (relative ``-o`` paths land there)."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        return soundforge(*args)
    finally:
        os.chdir(before)


needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="the ffmpeg and ffprobe programs are not installed (make test installs them)",
)


def stem_signal(name: str, seconds: float, rate: int = RATE) -> np.ndarray:
    """(frames, 2) float32: a sweep up one octave from the stem's own frequency, with a
    slow wobble, left and right differing. A sweep never repeats, so a shifted
    track cannot line up with it by accident (a steady tone would, every period)."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * FREQUENCIES[name] * (t + t**2 / (2 * seconds))
    wave = 0.12 * np.sin(phase) * (0.75 + 0.25 * np.sin(2 * t))
    return np.stack([wave, 0.8 * wave], axis=1).astype(np.float32)


def make_stems(folder: Path, names: tuple[str, ...], seconds: float = 3.0,
               subtype: str = "FLOAT") -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    signals = {}
    for name in names:
        signals[name] = stem_signal(name, seconds)
        sf.write(str(folder / f"{name}.wav"), signals[name], RATE, subtype=subtype)
    return signals


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


def ffmpeg_decode(path: Path, stream: int | None = None, channels: int = 2) -> np.ndarray:
    """(frames, channels) float32 as the ffmpeg program decodes it; ``stream`` is
    the audio stream's index, None for what ffmpeg picks by itself."""
    command = ["ffmpeg", "-v", "error", "-i", str(path)]
    if stream is not None:
        command += ["-map", f"0:a:{stream}"]
    command += ["-f", "f32le", "-ac", str(channels), "-"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, channels)


def best_lag(reference: np.ndarray, decoded: np.ndarray, search: int = 2048) -> int:
    """The shift (in samples) at which ``decoded`` matches ``reference`` best: the
    lag in [-search, search] with the largest dot product of the first channels
    (the first such lag on a tie)."""
    ref = reference[search:-search, 0].astype(np.float64)
    channel = np.ascontiguousarray(decoded[: len(ref) + 2 * search, 0], dtype=np.float64)
    # All 2 * search + 1 dot products in one call, in C, without BLAS: a Python
    # loop of BLAS dots cost seconds of CPU here (4097 calls, each waking
    # OpenBLAS's threads in this process, which loaded numpy before the
    # one-thread setting).
    scores = np.correlate(channel, ref, mode="valid")
    assert len(scores) == 2 * search + 1, "the decoded audio is too short to search"
    return int(np.argmax(scores)) - search


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(noise, 1e-20)))
