"""Test audio made on the spot: tones and noise in every format we read."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf


def tone(seconds: float, rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A few sines plus a little noise, float32 (frames, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    base = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1760 * t)
    data = np.stack([base * (1 - 0.3 * c) for c in range(channels)], axis=1)
    data += 0.01 * rng.standard_normal(data.shape)
    return data.astype(np.float32)


def write_audio(
    path: Path, seconds: float = 3.0, rate: int = 44100, channels: int = 2, seed: int = 0
) -> Path:
    """Write a test signal; the format follows the suffix (wav, flac, ogg, mp3, m4a)."""
    data = tone(seconds, rate, channels, seed)
    suffix = path.suffix.lower()
    if suffix in (".wav", ".flac", ".ogg", ".mp3"):
        kwargs = {}
        if suffix == ".ogg":
            kwargs = {"format": "OGG", "subtype": "VORBIS"}
        elif suffix == ".mp3":
            kwargs = {"format": "MP3", "subtype": "MPEG_LAYER_III"}
        sf.write(str(path), data, rate, **kwargs)
    elif suffix in (".m4a", ".aac"):
        _write_aac(path, data, rate)
    else:
        raise ValueError(suffix)
    return path


def _write_aac(path: Path, data: np.ndarray, rate: int) -> None:
    with av.open(str(path), "w", format="ipod" if path.suffix == ".m4a" else "adts") as out:
        layout = "stereo" if data.shape[1] == 2 else "mono"
        stream = out.add_stream("aac", rate=rate, layout=layout)
        frame_size = 1024
        planar = np.ascontiguousarray(data.T)
        for start in range(0, planar.shape[1], frame_size):
            chunk = np.ascontiguousarray(planar[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(noise, 1e-20)))
