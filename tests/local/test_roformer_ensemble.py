"""RoFormer models as ensemble members: each runs its own chunking on the raw
mix of the shared feed, and the ensemble is the average of the runs alone.

The combining is what is checked: members and ensembles run in the module's warm
engine (what the CLI calls); one preset goes through the CLI, so that a RoFormer
member is exercised there too (test_ensembles.py covers the ensemble syntax)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundforge.engines.local.engine import LocalEngine
from tests.local.ensemble_support import Alone, separate_warm
from tests.local.equivalence_support import sdiff_db
from tests.local.test_ensembles import separate

SIX = ("drums", "bass", "other", "vocals", "guitar", "piano")


def test_a_roformer_and_a_demucs_model_average_their_vocals(
    engine: LocalEngine, alone: Alone, mix: Path, tmp_path: Path
) -> None:
    vocals = ("vocals",)
    demucs = alone("htdemucs", vocals)
    roformer = alone("mel_roformer_vocals", vocals)
    both = separate_warm(engine, mix, tmp_path / "e", "htdemucs+mel_roformer_vocals",
                         stems=vocals)
    assert list(both) == ["vocals"]
    expected = {"vocals": (demucs["vocals"] + roformer["vocals"]) / 2}
    assert sdiff_db(both, expected) >= 80
    assert sdiff_db(both, roformer) < 40  # not one member alone


def test_six_stems_from_two_six_stem_families(
    engine: LocalEngine, alone: Alone, mix: Path, tmp_path: Path
) -> None:
    demucs = alone("htdemucs_6s")
    roformer = alone("bs_roformer_6s")
    both = separate_warm(engine, mix, tmp_path / "e", "htdemucs_6s+bs_roformer_6s")
    assert set(both) == set(SIX)
    expected = {name: (demucs[name] + roformer[name]) / 2 for name in SIX}
    assert sdiff_db(both, expected) >= 80


@pytest.mark.usefixtures("model_env")
def test_the_roformer_preset_takes_each_stem_from_its_model(
    alone: Alone, mix: Path, tmp_path: Path
) -> None:
    demucs = alone("htdemucs_ft")
    roformer = alone("mel_roformer_vocals", ("vocals",))
    preset = separate(mix, tmp_path / "p", "--model", "ensemble_roformer_drums_bass")
    assert set(preset) == {"drums", "bass", "other", "vocals"}
    assert sdiff_db({"vocals": preset["vocals"]}, roformer) >= 80
    assert sdiff_db({k: preset[k] for k in ("drums", "bass", "other")},
                    {k: demucs[k] for k in ("drums", "bass", "other")}) >= 80
