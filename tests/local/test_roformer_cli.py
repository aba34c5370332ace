"""RoFormer models from the command line: every catalogue entry separates,
in every output format, with --stems and --two-stems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from soundforge.engines.base import SeparationOptions
from soundforge.engines.local.catalog import MODELS
from soundforge.engines.local.engine import LocalEngine
from tests.support.audio import write_audio

ROFORMERS = [name for name, spec in MODELS.items() if spec.is_roformer]


def soundforge(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soundforge", *map(str, args)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )


# One model of each family (bs_roformer, mel_band_roformer: each its own
# package and warnings) separates through the CLI; the others through the
# module's warm engine (what the CLI calls), with the same checks.
THROUGH_THE_CLI = ["bs_roformer_vocals", "mel_roformer_karaoke"]


def assert_separated(name: str, stems: dict[str, str], percents: list[int]) -> None:
    assert set(stems) == set(MODELS[name].stems)
    for path in stems.values():
        info = sf.info(path)
        assert info.samplerate == 44100 and abs(info.frames - 66150) <= 1
    assert len(set(percents)) > 3 and percents == sorted(percents)


def test_the_cli_cases_cover_every_family() -> None:
    families = {MODELS[name].family for name in ROFORMERS}
    assert {MODELS[name].family for name in THROUGH_THE_CLI} == families


@pytest.mark.usefixtures("model_env")
@pytest.mark.parametrize("name", THROUGH_THE_CLI)
def test_every_roformer_family_separates_with_progress_from_the_cli(
    name: str, tmp_path: Path
) -> None:
    song = write_audio(tmp_path / "song.flac", seconds=1.5)
    done = soundforge("separate", song, "-o", tmp_path / "out", "--model", name, "--json")
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr  # the packages' own warnings are not the user's
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    result = messages[-1]
    assert result["type"] == "result"
    assert_separated(name, result["stems"],
                     [m["percent"] for m in messages if m["type"] == "progress"])


@pytest.mark.parametrize("name", [n for n in ROFORMERS if n not in THROUGH_THE_CLI])
def test_every_other_roformer_model_separates_with_progress(
    engine: LocalEngine, name: str, tmp_path: Path
) -> None:
    song = write_audio(tmp_path / "song.flac", seconds=1.5)
    percents: list[int] = []
    result = engine.separate(song, SeparationOptions(model=name), percents.append,
                             destination=tmp_path / "out")
    assert_separated(name, {k: str(v) for k, v in result.stems.items()}, percents)


def assert_mono_stems(folder: Path, files: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == files
    for name in files:
        if name.endswith((".wav", ".flac")):
            assert sf.info(str(folder / name)).channels == 1  # mono in, mono out


@pytest.mark.usefixtures("model_env")
def test_wav_depth_and_sample_rate_from_the_cli(tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=1.2, channels=1)
    done = soundforge("separate", song, "-o", tmp_path / "out", "--model", "bs_roformer_6s",
                      "--format", "wav", "--wav-depth", "24", "--sample-rate", "48000")
    assert done.returncode == 0, done.stderr
    assert_mono_stems(tmp_path / "out" / "song",
                      {f"{s}.wav" for s in MODELS["bs_roformer_6s"].stems})
    info = sf.info(str(tmp_path / "out" / "song" / "vocals.wav"))
    assert (info.subtype, info.samplerate) == ("PCM_24", 48000)


@pytest.mark.parametrize(
    ("options", "files"),
    [
        ({"format": "flac", "stems": ("guitar", "piano")}, {"guitar.flac", "piano.flac"}),
        ({"format": "mp3", "two_stems": "vocals"}, {"vocals.mp3", "no_vocals.mp3"}),
    ],
)
def test_formats_and_stem_choices(
    engine: LocalEngine, options: dict[str, Any], files: set[str], tmp_path: Path
) -> None:
    """Through the module's warm engine (what the CLI calls): the CLI's --format,
    --stems and --two-stems are run by the case above and test_cli_separate.py."""
    song = write_audio(tmp_path / "song.wav", seconds=1.2, channels=1)
    engine.separate(song, SeparationOptions(model="bs_roformer_6s", **options),
                    destination=tmp_path / "out")
    assert_mono_stems(tmp_path / "out", files)


@pytest.mark.usefixtures("model_env")
def test_ni_stems_from_a_roformer_model(tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=1.2)
    done = soundforge("separate", song, "-o", tmp_path / "out", "--model", "bs_roformer_6s",
                      "--format", "stem.mp4")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "song.stem.mp4").stat().st_size > 0


@pytest.mark.usefixtures("model_env")
def test_a_stem_the_model_does_not_have_is_refused(tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=1)
    done = soundforge("separate", song, "--model", "mel_roformer_vocals", "--stems", "drums")
    assert done.returncode != 0
    assert "has no stem 'drums'" in done.stderr and "vocals, other" in done.stderr


@pytest.mark.usefixtures("model_env")
@pytest.mark.parametrize(("args", "words"), [
    (["--shifts", "2"], "--shifts applies to Demucs models only"),
    (["--overlap", "0.5", "--segment", "3"], "--overlap and --segment apply to Demucs"),
])
def test_demucs_chunking_options_are_refused_not_ignored(
    args: list[str], words: str, tmp_path: Path
) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=1)
    done = soundforge("separate", song, "-o", tmp_path / "out", "--model", "bs_roformer_6s",
                      *args)
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert words in message and "chunk_size, num_overlap" in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.wav"))


# `models list` with the RoFormer rows (names never cut short, family, author,
# published quality and source, where): test_cli_separate.py's models-list test,
# on the same two CLI runs as the Demucs rows.
