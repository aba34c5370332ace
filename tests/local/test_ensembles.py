"""Ensembles through the CLI and the engine: results, stems, presets, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from soundforge.config import Settings
from soundforge.engines.base import CancelToken, SeparationOptions
from soundforge.engines.local import catalog
from soundforge.engines.local.engine import LocalEngine
from soundforge.engines.local.ensemble.presets import PRESETS
from soundforge.errors import CancelledError, InvalidOptionError
from tests.local.ensemble_support import Alone, separate_warm
from tests.local.equivalence_support import read_stem, sdiff_db
from tests.local.test_cli_separate import soundforge, stem_files
from tests.support.audio import write_audio
from tests.support.tiny_models import build_tiny_model_at_rate, build_tiny_repo

FOUR = ("drums", "bass", "other", "vocals")


def separate(song: Path, out: Path, *args: str) -> dict[str, np.ndarray]:
    """Through the CLI: what a user types, with float WAVs to compare."""
    done = soundforge("separate", song, "-o", out, "--wav-depth", "float", "--seed", "7",
                      "--json", *args)
    assert done.returncode == 0, done.stderr
    stems = json.loads(done.stdout.splitlines()[-1])["stems"]
    return {name: read_stem(path) for name, path in stems.items()}


def test_weighted_ensemble_is_the_weighted_average_of_its_models_run_alone(
    model_env: Path, alone: Alone, mix: Path, tmp_path: Path
) -> None:
    first = alone("htdemucs")
    second = alone("htdemucs_ft")
    both = separate(mix, tmp_path / "e", "--model", "htdemucs:2+htdemucs_ft")
    assert tuple(both) == FOUR
    expected = {name: (2 * first[name] + second[name]) / 3 for name in FOUR}
    assert sdiff_db(both, expected) >= 80
    # Not trivially equal to either member.
    assert sdiff_db(both, first) < 40 and sdiff_db(both, second) < 40


def test_six_stem_preset_combines_each_stem_over_the_models_that_give_it(
    model_env: Path, engine: LocalEngine, alone: Alone, mix: Path, tmp_path: Path
) -> None:
    ft = alone("htdemucs_ft")
    six = alone("htdemucs_6s")
    preset = separate(mix, tmp_path / "p", "--model", "ensemble_six_stems")
    assert sorted(preset) == sorted(catalog.SIX_STEMS)
    mixed = {**{s: ft[s] for s in ("drums", "bass", "vocals")},
             **{s: six[s] for s in ("guitar", "piano", "other")}}
    assert sdiff_db(preset, mixed) >= 80
    # A member-per-stem ensemble asked for one member's stem runs only that member.
    guitar = separate_warm(engine, mix, tmp_path / "g", "ensemble_six_stems",
                           stems=("guitar",))
    assert list(guitar) == ["guitar"] and sdiff_db(guitar, {"guitar": six["guitar"]}) >= 80


def test_json_run_two_stems_are_x_and_the_mix_minus_x_and_mono_stays_mono(
    model_env: Path, tmp_path: Path
) -> None:
    """Two inputs in one CLI run (one CLI and runner start): a stereo song, whose
    two stems add up to the mix, and a mono FLAC at 22.05 kHz, whose stems are
    mono at that rate and of its length. The run is also the CLI's --json mode
    test: every stdout line a protocol message naming its input, progress from
    0 to 100 in order, then the result."""
    song = write_audio(tmp_path / "song.wav", seconds=3.0)
    mono = write_audio(tmp_path / "mono.flac", seconds=2.5, rate=22050, channels=1)
    done = soundforge("separate", song, mono, "-o", tmp_path / "o", "--wav-depth", "float",
                      "--seed", "7", "--json", "--model", "max-spec/htdemucs+htdemucs_6s",
                      "--two-stems", "vocals")
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    for source in (song, mono):
        mine = [m for m in messages if m["input"] == str(source)]
        assert mine[-1]["type"] == "result"
        percents = [m["percent"] for m in mine if m["type"] == "progress"]
        assert percents[0] == 0 and percents[-1] == 100 and percents == sorted(percents)
    results = {m["input"]: m["stems"] for m in messages if m["type"] == "result"}
    assert list(results) == [str(song), str(mono)]
    stems = {name: read_stem(path) for name, path in results[str(song)].items()}
    assert list(stems) == ["vocals", "no_vocals"]
    mix = read_stem(song)
    assert np.abs(stems["vocals"] + stems["no_vocals"] - mix).max() < 1e-5
    assert np.abs(stems["vocals"]).max() > 1e-4
    assert list(results[str(mono)]) == ["vocals", "no_vocals"]
    for path in results[str(mono)].values():
        info = sf.info(path)
        assert (info.channels, info.samplerate, info.frames) == (1, 22050, int(2.5 * 22050))


def test_ensembles_write_mp3_from_the_cli(model_env: Path, tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=1.0)  # only the files are checked
    done = soundforge("separate", song, "-o", tmp_path / "out", "--model",
                      "min-spec/htdemucs+htdemucs_ft", "--stems", "vocals,drums",
                      "--format", "mp3")
    assert done.returncode == 0, done.stderr
    assert stem_files(tmp_path / "out") == ["song/drums.mp3", "song/vocals.mp3"]


def test_a_stem_subset_of_mono_input_at_another_rate_in_flac(
    engine: LocalEngine, tmp_path: Path
) -> None:
    """min-spec with a stem only one member has (guitar), on mono 22.05 kHz input,
    written as FLAC: mono stems at that rate, of its length (the writer path of
    the CLI's mp3 case above, and of its mono case, in the warm engine)."""
    mono = write_audio(tmp_path / "mono.wav", seconds=2.5, rate=22050, channels=1)
    result = engine.separate(mono, SeparationOptions(model="min-spec/htdemucs+htdemucs_6s",
                                                     stems=("vocals", "guitar"), format="flac"),
                             destination=tmp_path / "out")
    assert sorted(result.stems) == ["guitar", "vocals"]
    assert stem_files(tmp_path / "out") == ["guitar.flac", "vocals.flac"]
    for path in result.stems.values():
        info = sf.info(str(path))
        assert (info.channels, info.samplerate, info.frames) == (1, 22050, int(2.5 * 22050))


# (model, the CLI's options, the same as SeparationOptions fields, the words of the refusal)
BAD_ENSEMBLES: list[tuple[str, list[str], dict[str, Any], str]] = [
    ("htdemucs+htdemucs_9s", [], {}, "Unknown model 'htdemucs_9s' in ensemble"),
    ("htdemucs+htdemucs", [], {}, "Model htdemucs appears twice"),
    ("htdemucs+", [], {}, "has an empty member"),
    ("max-spec/htdemucs", [], {}, "An ensemble needs two or more models"),
    ("loudest/htdemucs+htdemucs_ft", [], {}, "Unknown ensemble combiner 'loudest'"),
    ("max-spec/htdemucs:2+htdemucs_ft", [], {}, "Weights apply to the average only"),
    ("htdemucs:-1+htdemucs_ft", [], {}, "must be a positive number"),
    ("htdemucs@guitar+htdemucs_6s", [], {}, "Model htdemucs has no stem 'guitar'"),
    ("htdemucs+htdemucs_ft", ["--stems", "piano"], {"stems": ("piano",)},
     "No model of ensemble"),
    ("ensemble_average", ["--two-stems", "guitar"], {"two_stems": "guitar"},
     "No model of ensemble ensemble_average"),
    ("htdemucs+ensemble_average", [], {}, "is an ensemble preset"),
    ("mdx_extra+htdemucs", ["--segment", "10"], {"segment": 10.0},
     "htdemucs (in ensemble mdx_extra+htdemucs) allows at most 7.8 s"),
]


@pytest.mark.parametrize(("model", "args", "options", "words"), BAD_ENSEMBLES)
def test_bad_ensembles_are_refused_by_the_engine(
    engine: LocalEngine, model: str, args: list[str], options: dict[str, Any], words: str
) -> None:
    """What ``soundforge separate`` calls before any work (``LocalEngine.validate``),
    for every bad ensemble; the CLI's side of it (exit code 2, that one line,
    nothing written) is checked on two of them below."""
    with pytest.raises(InvalidOptionError) as caught:
        engine.validate(SeparationOptions(model=model, **options))
    assert words in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(("model", "args", "options", "words"),
                         [BAD_ENSEMBLES[0], BAD_ENSEMBLES[-1]])
def test_bad_ensembles_are_refused_by_the_cli_before_any_work(
    model_env: Path, song: Path, tmp_path: Path, model: str, args: list[str],
    options: dict[str, Any], words: str
) -> None:
    done = soundforge("separate", song, "-o", tmp_path / "out", "--model", model, *args)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "out").exists()


def test_models_of_different_sample_rates_are_refused_before_decoding(
    tmp_path: Path, song: Path
) -> None:
    repo = build_tiny_repo(tmp_path / "repo", ("htdemucs",))
    build_tiny_model_at_rate(repo, "htdemucs_6s", 22050)
    done = soundforge("separate", song, "-o", tmp_path / "out", "--model",
                      "htdemucs+htdemucs_6s", env={"SOUNDFORGE_MODEL_REPO": str(repo)})
    assert done.returncode == 1
    assert "different sample rates (htdemucs 44100 Hz, htdemucs_6s 22050 Hz)" in done.stderr
    assert "Traceback" not in done.stderr
    assert stem_files(tmp_path / "out") == [] if (tmp_path / "out").exists() else True


def test_catalogue_rates_are_checked_by_the_engine_before_a_job_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = catalog.ModelSpec("slow_model", catalog.FOUR_STEMS, 1, 10, "-", "-", "-",
                             sample_rate=32000)
    monkeypatch.setitem(catalog.MODELS, "slow_model", slow)
    engine = LocalEngine(Settings())
    with pytest.raises(InvalidOptionError, match=r"different sample rates .*slow_model 32000 Hz"):
        engine.validate(SeparationOptions(model="htdemucs+slow_model"))


def test_members_load_once_progress_adds_up_and_cancel_leaves_nothing(
    tiny_repo: Path, song: Path, tmp_path: Path
) -> None:
    options = SeparationOptions(model="ensemble_six_stems", stems=("guitar", "drums"))
    with LocalEngine(Settings(model_repo=tiny_repo, demucs_timeout=120)) as engine:
        seen: list[int] = []
        first = engine.separate(song, options, seen.append, None, tmp_path / "one")
        assert sorted(first.stems) == ["drums", "guitar"]
        assert seen == sorted(seen) and seen[-1] == 100 and len(seen) > 5
        assert first.reused is False and first.timings["load"] > 0
        # Both members (htdemucs_ft and htdemucs_6s) stay loaded: nothing is loaded again.
        second = engine.separate(song, options, None, None, tmp_path / "two")
        assert second.reused is True and second.timings["load"] == 0

        cancel = CancelToken()

        def cancel_midway(percent: int) -> None:
            if percent >= 20:
                cancel.cancel()

        with pytest.raises(CancelledError):
            engine.separate(song, options, cancel_midway, cancel, tmp_path / "three")
        assert not (tmp_path / "three").exists() or stem_files(tmp_path / "three") == []


def test_models_list_shows_the_presets_and_what_they_need(tmp_path: Path) -> None:
    repo = build_tiny_repo(tmp_path / "repo", ("htdemucs", "htdemucs_ft", "htdemucs_6s"))
    env = {"SOUNDFORGE_MODEL_REPO": str(repo), "COLUMNS": "250"}
    done = soundforge("models", "list", "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = {row["model"]: row for row in map(json.loads, done.stdout.splitlines())
            if row["kind"] == "ensemble"}
    assert set(rows) == set(PRESETS)
    six = rows["ensemble_six_stems"]
    assert six["members"] == ["htdemucs_ft", "htdemucs_6s"] and six["available"]
    assert sorted(six["stems"]) == sorted(catalog.SIX_STEMS)
    assert rows["ensemble_vocals_max"]["combiner"] == "max-spec"
    assert rows["ensemble_average"]["missing"] == ["mdx_extra"]
    # A RoFormer member not in the repository is named like any other.
    assert rows["ensemble_roformer_vocals"]["missing"] == [
        "mel_roformer_vocals", "bs_roformer_vocals"
    ]
    table = soundforge("models", "list", env=env)
    assert "Ensemble presets" in table.stdout and "ensemble_six_stems" in table.stdout
    assert "needs mdx_extra" in table.stdout


def test_downloading_a_preset_fetches_its_members(tmp_path: Path) -> None:
    done = soundforge("models", "download", "ensemble_average",
                      env={"HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 1
    # Offline here: the first member it tries is named, with the fix.
    assert "Cannot download model htdemucs_ft" in done.stderr
    assert "SOUNDFORGE_MODEL_REPO" in done.stderr
