"""Combining the members' estimates of one stem, region by region as they stream in.

* ``WeightedAverage``: sum(w·x) / sum(w), sample by sample; no delay.
* ``SpectralPick`` (UVR's "Max Spec" / "Min Spec"): per STFT bin (and channel)
  the member estimate with the largest (smallest) magnitude, complex value and
  all, then back to samples by weighted overlap-add. It is streamed: frames sit
  on a fixed grid of absolute positions, the samples of a frame not yet
  complete wait in a carried tail, and a position is final once no later frame
  covers it. So the output does not depend on how the stream was cut into
  regions, and nothing proportional to the track's length is held.

Each stem's combined samples wait in a ``streaming.SampleQueue`` until every
stem has reached the same position (a spectral stem lags a stem one member
gives alone).
"""

from __future__ import annotations

from typing import Protocol

import torch

# 2048-point frames (46 ms at 44.1 kHz) with a quarter hop: UVR's and the
# common MSS spectrogram size, fine enough in frequency to tell voices apart.
N_FFT = 2048
HOP = N_FFT // 4


class StemCombiner(Protocol):
    def push(self, estimates: list[torch.Tensor]) -> torch.Tensor:
        """The members' estimates of the next region, each (channels, n) →
        the combined samples that are now final (channels, m), m ≥ 0."""
        ...

    def flush(self) -> torch.Tensor:
        """The end of the track: every combined sample not yet returned."""
        ...


class WeightedAverage:
    def __init__(self, weights: list[float]) -> None:
        total = sum(weights)
        self.weights = [w / total for w in weights]

    def push(self, estimates: list[torch.Tensor]) -> torch.Tensor:
        out = estimates[0] * self.weights[0]
        for estimate, weight in zip(estimates[1:], self.weights[1:], strict=True):
            out += estimate * weight
        return out

    def flush(self) -> torch.Tensor:
        return torch.zeros(0)  # nothing is held back


class SpectralPick:
    """Max- or min-spectrum combination, streamed (see the module's docstring).

    Frame ``k`` covers absolute positions [k·HOP − (N_FFT − HOP), … + N_FFT):
    the first frames reach before the track (zeros there), and frames go on
    until one starts at or after its end, so every sample of the track is under
    the same number of frames and ``sum(window²)`` over them is the same
    periodic function everywhere: dividing by it makes analysis then synthesis
    the identity when every member gives the same estimate.
    """

    def __init__(self, largest: bool, channels: int, n_fft: int = N_FFT, hop: int = HOP) -> None:
        if n_fft % hop:
            raise ValueError("the hop must divide the frame length")
        self.largest = largest
        self.n_fft = n_fft
        self.hop = hop
        self.window = torch.hann_window(n_fft, periodic=True, dtype=torch.float32)
        # Σ window² over the frames covering a position, by position mod hop.
        squared = self.window**2
        self.norm = squared.reshape(n_fft // hop, hop).sum(dim=0)
        if float(self.norm.min()) <= 1e-6:
            raise ValueError("this window and hop do not overlap-add to a positive sum")
        self.channels = channels
        pad = n_fft - hop
        self.frame_start = -pad  # absolute position of the next frame to compute
        self.tail: torch.Tensor | None = None  # (members, channels, n) from frame_start on
        self.pad = pad
        self.received = 0  # absolute position after the last input sample
        self.out = torch.zeros(channels, 0)  # overlap-added, from `out_start` on
        self.out_start = -pad
        self.emitted = 0  # absolute position up to which samples were returned

    def push(self, estimates: list[torch.Tensor]) -> torch.Tensor:
        block = torch.stack(estimates)  # (members, channels, n)
        if self.tail is None:
            self.tail = torch.zeros(*block.shape[:2], self.pad)  # zeros before the track
        self.tail = torch.cat([self.tail, block], dim=-1)
        self.received += block.shape[-1]
        self._frames(until=self.received - self.n_fft)
        return self._final(self.frame_start)

    def flush(self) -> torch.Tensor:
        if self.tail is None:
            return torch.zeros(self.channels, 0)
        # Zeros after the track, until a frame starts at or after its end.
        self.tail = torch.cat([self.tail, torch.zeros(*self.tail.shape[:2], self.n_fft)], dim=-1)
        self._frames(until=self.received - 1)
        return self._final(self.received)

    def _frames(self, until: int) -> None:
        """Compute every frame that starts at or before ``until``."""
        assert self.tail is not None
        count = (until - self.frame_start) // self.hop + 1
        if count <= 0:
            return
        span = (count - 1) * self.hop + self.n_fft
        frames = self.tail[..., :span].unfold(-1, self.n_fft, self.hop)  # (M, C, F, N)
        spectra = torch.fft.rfft(frames * self.window, dim=-1)
        magnitude = spectra.abs()
        pick = magnitude.argmax(dim=0) if self.largest else magnitude.argmin(dim=0)
        chosen = torch.gather(spectra, 0, pick.unsqueeze(0)).squeeze(0)  # (C, F, bins)
        signal = torch.fft.irfft(chosen, n=self.n_fft, dim=-1) * self.window  # (C, F, N)
        grow = self.frame_start + span - (self.out_start + self.out.shape[-1])
        if grow > 0:
            self.out = torch.cat([self.out, torch.zeros(self.channels, grow)], dim=-1)
        base = self.frame_start - self.out_start
        # Frame by frame, in order: every position sums its frames in the same
        # order however the stream was cut, so the result is too.
        for index in range(count):
            at = base + index * self.hop
            self.out[:, at : at + self.n_fft] += signal[:, index]
        self.frame_start += count * self.hop
        self.tail = self.tail[..., count * self.hop :]

    def _final(self, upto: int) -> torch.Tensor:
        """Samples [emitted, upto) of the output, normalised; then forget them."""
        lo, hi = self.emitted - self.out_start, upto - self.out_start
        if hi <= lo:
            return torch.zeros(self.channels, 0)
        phase = torch.arange(self.emitted, upto) % self.hop
        result = self.out[:, lo:hi] / self.norm[phase]
        self.out = self.out[:, hi:]
        self.out_start = upto
        self.emitted = upto
        return result
