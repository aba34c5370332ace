"""What the first decoding pass learns about a track: its normalisation and length."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class MixStats:
    """What the first decoding pass learns: the normalisation and the length."""

    mean: float
    std: float
    length: int  # samples at the model's rate, as the second pass will yield them
    source_frames: int  # frames at the file's own rate

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        # The official code keeps mean and std as float32 tensors; using the same
        # dtype keeps (x - mean) / std and y * std + mean bit-compatible with it.
        return torch.tensor(self.mean, dtype=torch.float32), torch.tensor(
            self.std, dtype=torch.float32
        )


class RunningStats:
    """Mean and unbiased standard deviation of the channel-averaged mix, merged
    block by block (Chan et al.) in float64 so one pass is enough and an hour of
    audio loses no precision."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, block: np.ndarray) -> None:
        ref = block.mean(axis=0, dtype=np.float32).astype(np.float64)
        n = ref.size
        if n == 0:
            return
        block_mean = float(ref.mean())
        block_m2 = float(((ref - block_mean) ** 2).sum())
        total = self.count + n
        delta = block_mean - self.mean
        self.mean += delta * n / total
        self.m2 += block_m2 + delta * delta * self.count * n / total
        self.count = total

    def result(self) -> tuple[float, float]:
        std = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0
        return self.mean, guard_std(std)


def guard_std(std: float) -> float:
    """The official API divides by ``std + 1e-8``; pure digital silence (or a
    non-finite value) would blow the input up, so it is left unscaled."""
    if not math.isfinite(std) or std < 1e-8:
        return 1.0
    return std + 1e-8

