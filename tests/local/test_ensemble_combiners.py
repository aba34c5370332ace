"""The streamed max/min-spectrum combiners: exact, cut-independent, and picking what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundforge.engines.local.ensemble.combine import N_FFT, SpectralPick, WeightedAverage

RATE = 44100


def stream(combiner: SpectralPick | WeightedAverage, members: list[torch.Tensor],
           cuts: list[int]) -> torch.Tensor:
    """Push ``members`` (each (channels, n)) in regions of the sizes ``cuts``, then flush."""
    assert sum(cuts) == members[0].shape[-1]
    out, at = [], 0
    for size in cuts:
        out.append(combiner.push([m[:, at : at + size] for m in members]))
        at += size
    out.append(combiner.flush())
    return torch.cat([block for block in out if block.numel()], dim=-1)


def snr_db(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float(10 * torch.log10((ref**2).sum() / ((ours - ref) ** 2).sum()))


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("length", [1, N_FFT - 1, N_FFT, 3 * N_FFT + 17, 44100])
def test_identical_estimates_come_back_unchanged(largest: bool, length: int) -> None:
    estimate = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
    out = stream(SpectralPick(largest, 2), [estimate, estimate.clone()], [length])
    assert out.shape == estimate.shape
    assert snr_db(out, estimate) > 120  # float32 rounding only


@pytest.mark.parametrize("largest", [True, False])
def test_the_output_does_not_depend_on_how_the_stream_is_cut(largest: bool) -> None:
    gen = torch.Generator().manual_seed(5)
    members = [torch.randn(2, 30001, generator=gen) for _ in range(3)]
    whole = stream(SpectralPick(largest, 2), members, [30001])
    for cuts in ([1] * 7 + [29994], [100, 5000, 3, 20000, 4898], [N_FFT] * 14 + [1329]):
        cut = stream(SpectralPick(largest, 2), members, cuts)
        assert cut.shape == whole.shape
        assert torch.equal(cut, whole), f"cuts {cuts[:4]}…: {float((cut - whole).abs().max())}"


def tone(freq: float, amplitude: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE)) / RATE
    wave = amplitude * torch.sin(2 * torch.pi * freq * t)
    return torch.stack([wave, wave])


def level_at(signal: torch.Tensor, freq: float) -> float:
    """Amplitude of ``freq`` in the middle of ``signal`` (a Hann-windowed FFT)."""
    middle = signal[0, RATE // 4 : RATE // 4 + 8192].numpy()
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size)))
    return float(spectrum[round(freq * middle.size / RATE)] / (np.hanning(middle.size).sum() / 2))


@pytest.mark.parametrize(("largest", "expected"), [(True, 0.5), (False, 0.05)])
def test_each_bin_takes_the_loudest_or_the_quietest_estimate(
    largest: bool, expected: float
) -> None:
    # Each member is loud where the other is quiet.
    first = tone(440, 0.5) + tone(3000, 0.05)
    second = tone(440, 0.05) + tone(3000, 0.5)
    out = stream(SpectralPick(largest, 2), [first, second], [9000, 11000, RATE - 20000])
    for freq in (440, 3000):
        assert level_at(out, freq) == pytest.approx(expected, rel=0.05)


def test_weighted_average_normalises_its_weights() -> None:
    a, b = torch.ones(2, 10), torch.zeros(2, 10)
    out = stream(WeightedAverage([3.0, 1.0]), [a, b], [4, 6])
    assert torch.allclose(out, torch.full((2, 10), 0.75))
