"""Rendering a mix: the player's rules (solo beats mute), presets, formats, and a
render that streams. The files are decoded by the ffmpeg program, not by us."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import stempeg

from soundforge.errors import InvalidOptionError
from soundforge.export.mixing import MixState, available_presets, preset_state, render_mix
from soundforge.export.sources import stems_in_folder
from tests.export.conftest import (
    RATE,
    best_lag,
    ffmpeg_decode,
    ffprobe,
    make_stems,
    needs_ffmpeg,
    run_in,
    snr_db,
    soundforge,
)

FOUR = ("drums", "bass", "other", "vocals")


def stored(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: sf.read(str(p), dtype="float32")[0] for p in folder.glob("*.wav")}


# The player's rule, case by case: (volumes, muted, soloed, master) → gains.
@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (MixState(), {"drums": 1, "bass": 1, "other": 1, "vocals": 1}),
        (MixState(muted=frozenset({"vocals"})), {"drums": 1, "bass": 1, "other": 1, "vocals": 0}),
        # Solo beats mute: a soloed stem sounds even when it is muted too.
        (MixState(muted=frozenset({"vocals", "drums"}), soloed=frozenset({"vocals"})),
         {"drums": 0, "bass": 0, "other": 0, "vocals": 1}),
        (MixState(soloed=frozenset({"vocals", "bass"}), gains={"bass": 0.5}),
         {"drums": 0, "bass": 0.5, "other": 0, "vocals": 1}),
        (MixState(gains={"drums": 0.25}, master=0.5),
         {"drums": 0.125, "bass": 0.5, "other": 0.5, "vocals": 0.5}),
    ],
)
def test_the_players_rule(state: MixState, expected: dict[str, float]) -> None:
    assert state.effective_gains(FOUR) == expected


@needs_ffmpeg
def test_the_mix_is_the_gain_weighted_sum_of_the_stems(tmp_path: Path) -> None:
    make_stems(tmp_path / "song", FOUR, seconds=2.0, subtype="PCM_16")
    result = soundforge("mix", tmp_path / "song", "--mix", "vocals=0, drums=0.5",
                        "--master-volume", "0.8", "-o", tmp_path / "mix.wav")
    assert result.returncode == 0, result.stderr
    stems = stored(tmp_path / "song")
    expected = 0.8 * (0.5 * stems["drums"] + stems["bass"] + stems["other"])
    decoded = ffmpeg_decode(tmp_path / "mix.wav")
    assert decoded.shape == expected.shape
    np.testing.assert_allclose(decoded, expected, atol=1.01 / 32768)  # 16-bit rounding


@needs_ffmpeg
def test_solo_beats_mute_in_the_render(tmp_path: Path) -> None:
    make_stems(tmp_path / "song", FOUR, seconds=1.0, subtype="FLOAT")
    result = soundforge("mix", tmp_path / "song", "--mute", "vocals,drums", "--solo", "vocals",
                        "--format", "flac", "--wav-depth", "24", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    produced = tmp_path / "out" / "song (mix).flac"
    assert ffprobe(produced)["streams"][0]["codec_name"] == "flac"
    decoded = ffmpeg_decode(produced)
    np.testing.assert_allclose(decoded, stored(tmp_path / "song")["vocals"], atol=2 / 2**23)


@needs_ffmpeg
def test_an_mp3_mix_decodes_to_the_sum_within_encoding_error(tmp_path: Path) -> None:
    make_stems(tmp_path / "song", FOUR, seconds=3.0)
    result = soundforge("mix", tmp_path / "song", "--preset", "instrumental", "--format", "mp3",
                        "-o", tmp_path / "inst.mp3")
    assert result.returncode == 0, result.stderr
    stems = stored(tmp_path / "song")
    expected = stems["drums"] + stems["bass"] + stems["other"]
    decoded = ffmpeg_decode(tmp_path / "inst.mp3")
    assert abs(float(ffprobe(tmp_path / "inst.mp3")["format"]["duration"]) - 3.0) < 0.06
    lag = best_lag(expected, decoded)
    assert abs(lag) < 1200  # MP3's encoder delay, as for MP3 stems
    aligned = decoded[max(lag, 0): max(lag, 0) + len(expected) - abs(lag)]
    assert snr_db(expected[: len(aligned)], aligned) > 20


@pytest.mark.parametrize(
    ("preset", "sounding"),
    [
        ("instrumental", {"drums", "bass", "other"}),
        ("acappella", {"vocals"}),
        ("drumless", {"bass", "other", "vocals"}),
        ("bassless", {"drums", "other", "vocals"}),
    ],
)
def test_presets(preset: str, sounding: set[str]) -> None:
    gains = preset_state(preset, FOUR).effective_gains(FOUR)
    assert {name for name, gain in gains.items() if gain} == sounding


def test_presets_offered_follow_the_stems_there_are() -> None:
    assert available_presets(FOUR) == ["instrumental", "acappella", "drumless", "bassless"]
    assert available_presets(("vocals", "no_vocals")) == ["instrumental", "acappella"]
    with pytest.raises(InvalidOptionError, match="needs a drums stem"):
        preset_state("drumless", ("vocals", "no_vocals"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mix", "flute=0.5"], "This separation has no flute stem: its stems are"),
        (["--mix", "vocals=loud"], "write STEM=VOLUME pairs"),
        (["--mix", "vocals=1.5"], "use a number from 0 to 1"),
        (["--solo", "kazoo"], "no kazoo stem"),
        (["--mute", "drums,bass,other,vocals"], "This mix is silent"),
        (["--preset", "nightcore"], "Unknown mix preset 'nightcore'"),
        (["--preset", "drumless", "--mute", "bass"], "give it alone"),
        (["--format", "ogg"], "Unknown mix format 'ogg'"),
        (["-o", "mix.flac"], "must end in .wav"),
    ],
)
def test_bad_mixes_are_refused_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    make_stems(tmp_path / "song", FOUR, seconds=0.5)
    result = run_in(tmp_path, "mix", tmp_path / "song", *args)
    assert result.returncode in (1, 2)
    assert message in " ".join(result.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]


def _render_peak(folder: Path, target: Path) -> int:
    source = stems_in_folder(folder)
    tracemalloc.start()
    try:
        render_mix(source, MixState(gains={"vocals": 0.5}), target, "wav", "float")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_render_streams_so_memory_stays_flat(tmp_path: Path) -> None:
    make_stems(tmp_path / "short", FOUR, seconds=10.0)
    make_stems(tmp_path / "long", FOUR, seconds=40.0)
    short_peak = _render_peak(tmp_path / "short", tmp_path / "short.wav")
    long_peak = _render_peak(tmp_path / "long", tmp_path / "long.wav")
    whole = 4 * int(40.0 * RATE) * 2 * 4  # bytes of the four long stems as float32
    # Four times the audio, the same memory: blocks, never whole stems.
    assert long_peak < 1.3 * short_peak, (short_peak, long_peak)
    assert long_peak < whole / 4, f"peak {long_peak / 1e6:.1f} MB for {whole / 1e6:.1f} MB"
    mix, _ = sf.read(str(tmp_path / "long.wav"), dtype="float32")
    stems = stored(tmp_path / "long")
    expected = stems["drums"] + stems["bass"] + stems["other"] + 0.5 * stems["vocals"]
    assert mix.shape == expected.shape
    np.testing.assert_allclose(mix, expected, atol=1e-6)


@needs_ffmpeg
def test_the_python_api_renders_and_exports(tmp_path: Path) -> None:
    import soundforge

    make_stems(tmp_path / "song", FOUR, seconds=1.0)
    mix = soundforge.render_mix(tmp_path / "song", tmp_path / "m.wav", gains={"bass": 0.25},
                                solo=("bass", "drums"), format="wav")
    stems = stored(tmp_path / "song")
    data, _ = sf.read(str(mix), dtype="float32")
    np.testing.assert_allclose(data, 0.25 * stems["bass"] + stems["drums"], atol=1.01 / 32768)
    with pytest.raises(InvalidOptionError, match="give it alone"):
        soundforge.render_mix(tmp_path / "song", tmp_path / "x.wav", preset="drumless",
                              mute=("bass",))
    produced = soundforge.export_stems(tmp_path / "song", codec="alac")
    assert produced == tmp_path / "song.stem.mp4"
    stems_read, rate = stempeg.read_stems(str(produced), dtype=np.float32)
    assert rate == RATE and stems_read.shape[0] == 5
