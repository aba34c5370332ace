"""RoFormer models as ensemble members: each runs its own chunking on the raw
mix of the shared feed, and the ensemble is the average of the runs alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.local.equivalence_support import sdiff_db
from tests.local.test_ensembles import separate
from tests.support.audio import write_audio

SIX = ("drums", "bass", "other", "vocals", "guitar", "piano")


@pytest.mark.usefixtures("model_env")
def test_a_roformer_and_a_demucs_model_average_their_vocals(tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=2.5)
    demucs = separate(song, tmp_path / "a", "--model", "htdemucs", "--stems", "vocals")
    roformer = separate(song, tmp_path / "b", "--model", "mel_roformer_vocals",
                        "--stems", "vocals")
    both = separate(song, tmp_path / "e", "--model", "htdemucs+mel_roformer_vocals",
                    "--stems", "vocals")
    expected = {"vocals": (demucs["vocals"] + roformer["vocals"]) / 2}
    assert sdiff_db(both, expected) >= 80
    assert sdiff_db(both, roformer) < 40  # not one member alone


@pytest.mark.usefixtures("model_env")
def test_six_stems_from_two_six_stem_families(tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=2.0)
    demucs = separate(song, tmp_path / "a", "--model", "htdemucs_6s")
    roformer = separate(song, tmp_path / "b", "--model", "bs_roformer_6s")
    both = separate(song, tmp_path / "e", "--model", "htdemucs_6s+bs_roformer_6s")
    assert set(both) == set(SIX)
    expected = {name: (demucs[name] + roformer[name]) / 2 for name in SIX}
    assert sdiff_db(both, expected) >= 80


@pytest.mark.usefixtures("model_env")
def test_the_roformer_preset_takes_each_stem_from_its_model(tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=2.0)
    demucs = separate(song, tmp_path / "a", "--model", "htdemucs_ft")
    roformer = separate(song, tmp_path / "b", "--model", "mel_roformer_vocals",
                        "--stems", "vocals")
    preset = separate(song, tmp_path / "p", "--model", "ensemble_roformer_drums_bass")
    assert set(preset) == {"drums", "bass", "other", "vocals"}
    assert sdiff_db({"vocals": preset["vocals"]}, roformer) >= 80
    assert sdiff_db({k: preset[k] for k in ("drums", "bass", "other")},
                    {k: demucs[k] for k in ("drums", "bass", "other")}) >= 80
