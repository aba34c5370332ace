"""RoFormer models through the shipped path give their package's own inference.

Each test runs ``separate_file`` (what the runner calls) on a tiny random-weight
RoFormer loaded by the real loader from its published-format files, and
compares the written float WAV stems with the package's ``demix_track`` run on
the whole decoded track with the same network. Lengths: shorter than a chunk,
exactly one chunk, long enough for the reflect padding at both ends, ragged.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from soundforge.engines.local.catalog import MODELS
from soundforge.engines.local.inference import separate_file
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.roformer.loader import RoformerModel
from tests.local.equivalence_support import (
    MIN_SDIFF_DB,
    compare_written,
    decoded_mix,
    read_stem,
)
from tests.support.audio import write_audio
from tests.support.tiny_roformer import TINY_CHUNK

RATE = 44100
ROFORMERS = [name for name, spec in MODELS.items() if spec.is_roformer]
# Chunk C = TINY_CHUNK, step C/2, border C/2: reflect padding starts above 2·border = C.
LENGTHS = {
    "shorter than a chunk": TINY_CHUNK // 3,
    "just over half a chunk": TINY_CHUNK // 2 + 7,
    "exactly one chunk": TINY_CHUNK,
    "padded, ragged": 5 * TINY_CHUNK // 2 + 1234,
    "padded, whole steps": 4 * TINY_CHUNK,
}



@pytest.fixture(scope="module")
def models(tiny_repo: Path) -> dict[str, RoformerModel]:
    return {name: load_model(name, tiny_repo) for name in ROFORMERS}


def package_estimates(model: RoformerModel, mix: torch.Tensor) -> dict[str, torch.Tensor]:
    """The package's own demix_track on the whole mix (its CLI's arithmetic)."""
    if model.family == "bs_roformer":
        from bs_roformer import demix_track
    else:
        from mel_band_roformer import demix_track
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package's own deprecation warnings
        result, _ = demix_track(model.config, model.net, mix, torch.device("cpu"))
    estimates = {k: torch.from_numpy(np.asarray(v)) for k, v in result.items()}
    if model.target is None:
        return dict(zip(model.sources, estimates.values(), strict=True))
    (target,) = estimates.values()
    rest = mix - target  # the package's CLI writes this as the "instrumental"
    pair = [target, rest] if model.target == 0 else [rest, target]
    return dict(zip(model.sources, pair, strict=True))


def run(model: Any, name: str, source: Path, out: Path, **options: Any) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    request = RunRequest(
        id="t", input=str(source), output_dir=str(out), model=name, format="wav",
        wav_depth="float", **options,
    )
    calls: list[float] = []
    stems = separate_file(model, request, lambda f, _s: calls.append(f), lambda: False)
    assert calls == sorted(calls) and calls[-1] == 1.0
    return stems


def compare(model: RoformerModel, stems: dict[str, str], source: Path, channels: int = 2) -> float:
    mix = decoded_mix(model, source)
    ref = package_estimates(model, mix)
    return compare_written(ref, list(model.sources), stems, channels)


@pytest.mark.parametrize("length", list(LENGTHS))
@pytest.mark.parametrize("name", ROFORMERS)
def test_matches_the_packages_demix_track(
    models: dict[str, RoformerModel], tmp_path: Path, name: str, length: str
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=LENGTHS[length] / RATE)
    stems = run(models[name], name, source, tmp_path / "out")
    assert set(stems) == set(MODELS[name].stems)
    assert compare(models[name], stems, source) >= MIN_SDIFF_DB


def test_mono_input_gives_mono_stems_matching_the_package(
    models: dict[str, RoformerModel], tmp_path: Path
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=1.7, channels=1)
    stems = run(models["mel_roformer_vocals"], "mel_roformer_vocals", source, tmp_path / "o")
    assert read_stem(stems["vocals"]).shape[0] == 1
    assert compare(models["mel_roformer_vocals"], stems, source, channels=1) >= MIN_SDIFF_DB


def test_another_sample_rate_is_separated_at_the_models_rate(
    models: dict[str, RoformerModel], tmp_path: Path
) -> None:
    # 32 kHz in: the model sees the mix resampled to 44.1 kHz, as the
    # package's users must do by hand; stems are compared at the model's rate.
    source = write_audio(tmp_path / "in.wav", seconds=1.9, rate=32000)
    stems = run(models["bs_roformer_6s"], "bs_roformer_6s", source, tmp_path / "o",
                sample_rate=RATE)
    assert compare(models["bs_roformer_6s"], stems, source) >= MIN_SDIFF_DB


def test_two_stems_and_stems_subsets(models: dict[str, RoformerModel], tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=1.3)
    six = models["bs_roformer_6s"]
    pair = run(six, "bs_roformer_6s", source, tmp_path / "a", two_stems="guitar")
    assert set(pair) == {"guitar", "no_guitar"}
    assert compare(six, pair, source) >= MIN_SDIFF_DB
    some = run(six, "bs_roformer_6s", source, tmp_path / "b", stems=("piano", "vocals"))
    assert set(some) == {"piano", "vocals"}
    assert compare(six, some, source) >= MIN_SDIFF_DB
