"""Several audio files read in lockstep, block by block.

Both exports combine stems sample by sample (the mix sums them, an NI Stems
file interleaves them), so they need the same stretch of every file at once,
without ever holding a whole file: memory stays at a few blocks per file
whatever the length of the track.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from soundforge.audio.reader import AudioReader

BLOCK_FRAMES = 1 << 15


class _Source:
    """One file's blocks, re-cut to whatever length the caller takes next."""

    def __init__(self, path: Path, sample_rate: int, channels: int) -> None:
        self._blocks = iter(AudioReader(path, sample_rate, channels))
        self._buffer = np.zeros((channels, 0), dtype=np.float32)
        self._channels = channels
        self.exhausted = False

    def take(self, frames: int) -> np.ndarray:
        """Exactly ``frames`` frames; zeros once the file has ended."""
        while self._buffer.shape[1] < frames and not self.exhausted:
            block = next(self._blocks, None)
            if block is None:
                self.exhausted = True
            else:
                self._buffer = np.concatenate([self._buffer, block], axis=1)
        out = self._buffer[:, :frames]
        self._buffer = self._buffer[:, frames:]
        if out.shape[1] < frames:
            out = np.pad(out, ((0, 0), (0, frames - out.shape[1])))
        return out

    @property
    def finished(self) -> bool:
        return self.exhausted and self._buffer.shape[1] == 0


def aligned_blocks(
    paths: Sequence[Path],
    sample_rate: int,
    channels: int,
    total_frames: int,
    block_frames: int = BLOCK_FRAMES,
) -> Iterator[list[np.ndarray]]:
    """Yield, per step, one ``(channels, n)`` float32 block of each file, all of
    the same ``n``, until exactly ``total_frames`` frames were given.

    A file shorter than ``total_frames`` is padded with silence and a longer one
    is cut, so every output lines up with the stems it came from (the stems of
    one separation have the same length; an original mix resampled to their
    rate can differ by a sample).
    """
    sources = [_Source(path, sample_rate, channels) for path in paths]
    done = 0
    while done < total_frames:
        frames = min(block_frames, total_frames - done)
        yield [source.take(frames) for source in sources]
        done += frames
