"""The decoded mix as a sliding window shared by every model that reads it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from soundforge.errors import EngineError


class MixFeed:
    """The decoded mix as a sliding window: blocks arrive from the decoder,
    windows are read with zeros outside the track (the reference pads the same
    way), and what no pass needs any more is dropped."""

    def __init__(
        self,
        blocks: Iterator[np.ndarray],
        length: int,
        channels: int,
        mean: torch.Tensor,
        std: torch.Tensor,
    ) -> None:
        self._blocks = blocks
        self.length = length
        self.channels = channels
        self._mean = mean
        self._std = std
        self._raw: list[torch.Tensor] = []  # un-normalised, for mix − X
        self._norm: list[torch.Tensor] = []
        self.start = 0  # mix position of the first kept sample
        self.end = 0  # mix position after the last decoded sample
        self._exhausted = False

    def ensure(self, end: int) -> None:
        end = min(end, self.length)
        while self.end < end:
            try:
                block = next(self._blocks)
            except StopIteration:
                self._exhausted = True
                break
            raw = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
            self._raw.append(raw)
            self._norm.append((raw - self._mean) / self._std)
            self.end += raw.shape[-1]
        if self.end < end:
            raise EngineError(
                f"The audio decoded to {self.end} samples the second time but "
                f"{self.length} the first: the file changed while it was being read."
            )

    def finish(self) -> None:
        """Check the decoder ends where the first pass said it would."""
        if not self._exhausted:
            for block in self._blocks:
                self.end += block.shape[-1]
        if self.end != self.length:
            raise EngineError(
                f"The audio decoded to {self.end} samples the second time but "
                f"{self.length} the first: the file changed while it was being read."
            )

    def _slice(self, parts: list[torch.Tensor], a: int, b: int) -> torch.Tensor:
        """Samples [a, b) (within the track and the kept range)."""
        out = []
        pos = self.start
        for part in parts:
            n = part.shape[-1]
            lo, hi = max(a, pos), min(b, pos + n)
            if lo < hi:
                out.append(part[:, lo - pos : hi - pos])
            pos += n
            if pos >= b:
                break
        if len(out) == 1:
            return out[0]
        return torch.cat(out, dim=1) if out else torch.zeros(self.channels, 0)

    def window(self, start: int, length: int) -> torch.Tensor:
        """Normalised samples [start, start + length), zero outside the track."""
        end = start + length
        self.ensure(end)
        lo, hi = max(start, 0), min(end, self.length)
        if lo < self.start:
            raise EngineError("internal: a window reaches behind the released input")
        if lo >= hi:
            return torch.zeros(self.channels, length)
        inside = self._slice(self._norm, lo, hi)
        if lo == start and hi == end:
            return inside.contiguous()
        return torch.nn.functional.pad(inside, (lo - start, end - hi))

    def raw(self, start: int, end: int) -> torch.Tensor:
        self.ensure(end)
        return self._slice(self._raw, start, end)

    def release(self, before: int) -> None:
        """Forget samples before ``before``."""
        while self._raw and self.start + self._raw[0].shape[-1] <= before:
            n = self._raw[0].shape[-1]
            self._raw.pop(0)
            self._norm.pop(0)
            self.start += n

