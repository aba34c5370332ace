"""The shipped separation path gives apply_model's output, to float32 rounding.

Every test runs ``separate_file`` (what the runner process calls) or the
LocalEngine on a tiny random-weight model loaded by the real loader, and
compares the written float WAV stems with ``demucs.apply.apply_model`` run on
the whole track with the same weights, shifts, overlap, segment and seed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from soundforge.engines.base import SeparationOptions
from soundforge.engines.local.catalog import DEMUCS, MODELS
from soundforge.engines.local.engine import LocalEngine
from soundforge.engines.local.inference import separate_file
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.request import RunRequest
from tests.local.equivalence_support import (
    MIN_SDIFF_DB,
    as_written,
    compare_written,
    read_stem,
    reference_estimates,
    sdiff_db,
)
from tests.support.audio import write_audio
from tests.support.tiny_models import TINY_SEGMENT

RATE = 44100
# RoFormer models are compared with their own package's inference
# (test_roformer_equivalence.py).
DEMUCS_MODELS = [name for name, spec in MODELS.items() if spec.family == DEMUCS]
SEGMENT = int(TINY_SEGMENT * RATE)
STRIDE = int(0.75 * SEGMENT)


@pytest.fixture(scope="module")
def models(tiny_repo: Path) -> dict[str, Any]:
    return {name: load_model(name, tiny_repo) for name in DEMUCS_MODELS}


def run(model: Any, name: str, source: Path, out: Path, **options: Any) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    request = RunRequest(
        id="t",
        input=str(source),
        output_dir=str(out),
        model=name,
        format="wav",
        wav_depth="float",
        **options,
    )
    calls: list[float] = []
    stems = separate_file(
        model, request, lambda fraction, _stage: calls.append(fraction), lambda: False
    )
    assert calls == sorted(calls) and calls[-1] == 1.0
    return stems


def check(
    model: Any,
    stems: dict[str, str],
    source: Path,
    *,
    channels: int = 2,
    shifts: int,
    seed: int | None = None,
    segment: float | None = None,
) -> float:
    _, ref = reference_estimates(model, source, shifts=shifts, seed=seed, segment=segment)
    db = compare_written(ref, list(model.sources), stems, channels)
    assert db >= MIN_SDIFF_DB, f"signal-to-difference {db:.1f} dB"
    return db


# Shorter than one segment; an exact multiple of the stride; several segments
# with a ragged end.
LENGTHS = {"short": 0.7, "stride_multiple": 2 * STRIDE / RATE, "ragged": 3.7}
# Every length for htdemucs, one for the others (whose networks run the same
# code); the full matrix runs with the slow tests.
CASES = [
    pytest.param(
        name, length, marks=[] if name == "htdemucs" or length == "ragged" else [pytest.mark.slow]
    )
    for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s")
    for length in LENGTHS
]




@pytest.mark.parametrize(("name", "length"), CASES)
def test_matches_apply_model_without_shifts(
    models: dict[str, Any], tmp_path: Path, name: str, length: str
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=LENGTHS[length])
    stems = run(models[name], name, source, tmp_path / "out", shifts=0)
    assert set(stems) == set(MODELS[name].stems)
    check(models[name], stems, source, shifts=0)


@pytest.mark.parametrize("name", DEMUCS_MODELS)
def test_matches_a_seeded_apply_model_with_one_shift(
    models: dict[str, Any], tmp_path: Path, name: str
) -> None:
    # With a seed the random shift offsets are the reference's, bag members
    # included (each member's offset is drawn after the previous one ran).
    source = write_audio(tmp_path / "in.wav", seconds=2.5)
    stems = run(models[name], name, source, tmp_path / "out", shifts=1, seed=11)
    check(models[name], stems, source, shifts=1, seed=11)


def test_two_shifts_run_in_lockstep_and_still_match(models: dict[str, Any], tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2.5)
    stems = run(models["htdemucs"], "htdemucs", source, tmp_path / "out", shifts=2, seed=3)
    check(models["htdemucs"], stems, source, shifts=2, seed=3)


def test_mdx_extra_bag_of_hdemucs_matches(models: dict[str, Any], tmp_path: Path) -> None:
    # mdx_extra's bag sets a 44 s segment; overriding it to 0.6 s makes a short
    # input span several segments of these context-free networks.
    source = write_audio(tmp_path / "in.wav", seconds=1.5)
    stems = run(models["mdx_extra"], "mdx_extra", source, tmp_path / "out", shifts=0, segment=0.6)
    check(models["mdx_extra"], stems, source, shifts=0, segment=0.6)
    stems = run(models["mdx_extra"], "mdx_extra", source, tmp_path / "out44", shifts=0)
    check(models["mdx_extra"], stems, source, shifts=0)


def test_mono_input_matches(models: dict[str, Any], tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2.3, channels=1)
    stems = run(models["htdemucs"], "htdemucs", source, tmp_path / "out", shifts=0)
    check(models["htdemucs"], stems, source, channels=1, shifts=0)


def test_shorter_segment_than_the_models_matches(models: dict[str, Any], tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2.2)
    stems = run(models["htdemucs"], "htdemucs", source, tmp_path / "out", shifts=0, segment=1.5)
    check(models["htdemucs"], stems, source, shifts=0, segment=1.5)


def test_two_stems_of_a_single_model_keep_the_official_complement(
    models: dict[str, Any], tmp_path: Path
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2.5)
    stems = run(
        models["htdemucs"], "htdemucs", source, tmp_path / "out", shifts=0, two_stems="drums"
    )
    assert set(stems) == {"drums", "no_drums"}
    check(models["htdemucs"], stems, source, shifts=0)


class CountingCalls:
    """Counts forward calls of each bag member (the networks stay the real ones)."""

    def __init__(self, model: Any) -> None:
        self.calls = [0] * len(model.models)
        self._handles = [
            net.register_forward_hook(self._hook(i)) for i, net in enumerate(model.models)
        ]

    def _hook(self, index: int) -> Any:
        def hook(*_args: Any) -> None:
            self.calls[index] += 1

        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def test_one_stem_of_htdemucs_ft_runs_only_its_specialist(
    models: dict[str, Any], tmp_path: Path
) -> None:
    model = models["htdemucs_ft"]
    source = write_audio(tmp_path / "in.wav", seconds=2.2)
    counter = CountingCalls(model)
    try:
        stems = run(
            model, "htdemucs_ft", source, tmp_path / "out", shifts=1, seed=4, two_stems="vocals"
        )
    finally:
        counter.close()
    vocals = model.sources.index("vocals")
    assert counter.calls[vocals] > 0
    assert [c for i, c in enumerate(counter.calls) if i != vocals] == [0, 0, 0]
    mix, ref = reference_estimates(model, source, shifts=1, seed=4)
    ours = {name: read_stem(path) for name, path in stems.items()}
    # The other specialists did not run: what is left is the mix minus vocals.
    expected = {
        "vocals": as_written(ref["vocals"], 2),
        "no_vocals": as_written(mix - ref["vocals"], 2),
    }
    assert sdiff_db(ours, expected) >= MIN_SDIFF_DB


def test_a_subset_of_stems_runs_only_the_members_it_needs(
    models: dict[str, Any], tmp_path: Path
) -> None:
    model = models["htdemucs_ft"]
    source = write_audio(tmp_path / "in.wav", seconds=2.0)
    counter = CountingCalls(model)
    try:
        stems = run(
            model, "htdemucs_ft", source, tmp_path / "out", shifts=0, stems=("drums", "bass")
        )
    finally:
        counter.close()
    assert set(stems) == {"drums", "bass"}
    used = {model.sources.index("drums"), model.sources.index("bass")}
    assert {i for i, c in enumerate(counter.calls) if c} == used
    check(model, stems, source, shifts=0)


def test_unseeded_runs_draw_their_own_shifts(models: dict[str, Any], tmp_path: Path) -> None:
    # No seed: the offsets come from the process's random state, so the runner
    # does not silently make every run identical.
    source = write_audio(tmp_path / "in.wav", seconds=2.0)
    random.seed(1)
    first = run(models["htdemucs"], "htdemucs", source, tmp_path / "a", shifts=1)
    random.seed(2)
    second = run(models["htdemucs"], "htdemucs", source, tmp_path / "b", shifts=1)
    assert (read_stem(first["drums"]) != read_stem(second["drums"])).any()


def test_through_the_engine_and_runner_process(
    models: dict[str, Any], engine: LocalEngine, tmp_path: Path
) -> None:
    """The whole shipped path: LocalEngine → port → runner process → separate_file."""
    source = write_audio(tmp_path / "in.wav", seconds=2.4)
    options = SeparationOptions(model="htdemucs_6s", wav_depth="float", shifts=1, seed=8)
    stems = engine.separate(source, options, None, None, tmp_path / "out").stems
    check(models["htdemucs_6s"], {k: str(v) for k, v in stems.items()}, source, shifts=1, seed=8)
