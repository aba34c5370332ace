"""The reference the equivalence tests compare with: the official API's arithmetic
(``demucs.api.Separator.separate_tensor``) on the whole decoded track."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from demucs.apply import apply_model

from soundforge.audio.reader import AudioReader

# Float32 rounding, as DESIGN.md's yardstick puts it.
MIN_SDIFF_DB = 80.0


def decoded_mix(model: Any, path: Path) -> torch.Tensor:
    reader = AudioReader(path, model.samplerate, model.audio_channels)
    return torch.from_numpy(np.concatenate(list(reader), axis=1))


def reference_estimates(
    model: Any,
    path: Path,
    *,
    shifts: int,
    overlap: float = 0.25,
    segment: float | None = None,
    seed: int | None = None,
    device: str | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(decoded mix, {source: estimate}) at the model's rate, as the official API gives them."""
    mix = decoded_mix(model, path)
    ref = mix.mean(0)
    mean = ref.mean()
    std = ref.std() + 1e-8
    if seed is not None:
        random.seed(seed)
    with torch.no_grad():
        out = apply_model(
            model,
            ((mix - mean) / std)[None],
            shifts=shifts,
            overlap=overlap,
            segment=segment,
            progress=False,
            device=device,
        )[0].cpu()
    out = out * std + mean
    return mix, dict(zip(model.sources, out, strict=True))


def read_stem(path: str | Path) -> np.ndarray:
    """A written stem as float64 (channels, frames)."""
    data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    return data.T


def sdiff_db(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> float:
    """10·log10(Σ ref² / Σ (ours − ref)²) over all stems."""
    signal = sum(float((ref[name] ** 2).sum()) for name in ref)
    noise = sum(float(((ours[name] - ref[name]) ** 2).sum()) for name in ref)
    if noise == 0:
        return float("inf")
    return 10 * np.log10(signal / noise)


def as_written(estimate: torch.Tensor, channels: int) -> np.ndarray:
    """What a writer makes of an estimate for an input of ``channels`` channels."""
    data = estimate.double().numpy()
    if channels == 1:
        data = data.astype(np.float32).mean(axis=0, keepdims=True, dtype=np.float32)
    return data.astype(np.float32).astype(np.float64)


def compare_written(
    ref: dict[str, torch.Tensor], sources: list[str], stems: dict[str, str], channels: int
) -> float:
    """SDiff of the written ``stems`` against the reference's estimates as the
    files would hold them (``no_X``: the sum of the other sources)."""
    expected = {name: as_written(ref[name], channels) for name in stems if name in ref}
    for name in stems:
        if name.startswith("no_"):
            kept = name[3:]
            others = [ref[s] for s in sources if s != kept]
            expected[name] = as_written(sum(others[1:], others[0]), channels)
    ours = {name: read_stem(path) for name, path in stems.items()}
    for name in ours:
        assert ours[name].shape == expected[name].shape, name
    return sdiff_db(ours, expected)
