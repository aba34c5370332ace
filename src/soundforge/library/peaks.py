"""Waveform peaks of a stored stem, for players that do not decode whole files.

A browser that plays a long separation by streaming never holds its samples,
so it cannot draw the waveform itself; the server reads the stem once, in
blocks (memory does not grow with the length), and keeps the result next to
the stem so the next visit costs a file read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from soundforge.audio.reader import AudioReader
from soundforge.storage.atomic import write_text_atomically

log = logging.getLogger(__name__)

BUCKETS = 1600  # as many as the in-browser waveform uses
FINE_FRAMES = 256  # first pass: min/max per this many frames
FORMAT_VERSION = 1


def cache_path(stem_path: Path) -> Path:
    # Hidden, inside the job's own folder: removed with the job's stems.
    return stem_path.with_name(f".{stem_path.name}.peaks.json")


def compute_peaks(path: Path, buckets: int = BUCKETS) -> dict[str, Any]:
    """Min/max of the mono mix-down in ``buckets`` equal slices of the file."""
    reader = AudioReader(path)
    fine_min: list[np.ndarray] = []
    fine_max: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.float32)
    for block in reader:
        mono = np.concatenate([carry, block.mean(axis=0)])
        usable = len(mono) - len(mono) % FINE_FRAMES
        if usable:
            cells = mono[:usable].reshape(-1, FINE_FRAMES)
            fine_min.append(cells.min(axis=1))
            fine_max.append(cells.max(axis=1))
        carry = mono[usable:]
    if len(carry):
        fine_min.append(carry.min(keepdims=True))
        fine_max.append(carry.max(keepdims=True))
    lows = np.concatenate(fine_min) if fine_min else np.zeros(0, dtype=np.float32)
    highs = np.concatenate(fine_max) if fine_max else np.zeros(0, dtype=np.float32)
    count = min(buckets, len(lows))
    # Slice starts; with count ≤ len(lows) no slice is empty.
    starts = np.linspace(0, len(lows), count + 1).astype(int)[:-1]
    mins = np.minimum(np.minimum.reduceat(lows, starts), 0.0) if count else lows
    maxs = np.maximum(np.maximum.reduceat(highs, starts), 0.0) if count else highs
    return {
        "version": FORMAT_VERSION,
        "duration": reader.frames / reader.info.sample_rate if reader.info.sample_rate else 0.0,
        "mins": [round(float(v), 4) for v in mins],
        "maxs": [round(float(v), 4) for v in maxs],
    }


def stem_peaks(path: Path) -> dict[str, Any]:
    """Peaks of ``path``, from its cache when that is newer than the stem and whole."""
    cache = cache_path(path)
    try:
        if cache.stat().st_mtime >= path.stat().st_mtime:
            cached = json.loads(cache.read_text())
            if cached.get("version") == FORMAT_VERSION:
                return dict(cached)
    except (OSError, ValueError):
        pass  # no cache yet, or an unreadable one: compute it again
    peaks = compute_peaks(path)
    try:
        write_text_atomically(cache, json.dumps(peaks, separators=(",", ":")))
    except OSError as exc:  # read-only or full disk: only a lost shortcut
        log.warning("could not cache waveform peaks in %s: %s", cache, exc)
    return peaks
