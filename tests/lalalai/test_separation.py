"""Separations that succeed: every stem type, the task plan, formats, progress."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from soundforge.engines.base import SeparationOptions
from soundforge.engines.lalalai.engine import LalalaiEngine
from soundforge.stems import LALALAI_STEMS
from tests.lalalai.conftest import gain, listing
from tests.support.fake_lalalai import FakeLalalai

# Our stem → the provider's track label it must come from.
API_LABEL = {
    "vocals": "vocals",
    "drums": "drum",
    "bass": "bass",
    "electric_guitar": "electric_guitar",
    "acoustic_guitar": "acoustic_guitar",
    "piano": "piano",
    "synth": "synthesizer",
    "strings": "strings",
    "wind": "wind",
}


def run(engine: LalalaiEngine, song: Path, out: Path, **options: object) -> tuple[dict, list[int]]:
    seen: list[int] = []
    stems = engine.separate(song, SeparationOptions(**options), seen.append, None, out).stems
    return stems, seen


def task_for(fake: FakeLalalai, api_stem: str, multivocal: str | None = None):
    found = [
        task for task in fake.tasks.values()
        if task.kind == "stem_separator" and task.stems == [api_stem]
        and task.presets.get("multivocal") == multivocal
    ]
    assert len(found) == 1, f"expected one stem_separator task for {api_stem}"
    return found[0]


def test_all_ten_stems_one_multistem_task_and_four_single_tasks(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    before = fake.minutes_left()
    stems, progress = run(engine, song, out)

    multi = [task for task in fake.tasks.values() if task.kind == "multistem"]
    assert len(multi) == 1
    assert multi[0].stems == [
        "vocals", "drum", "bass", "electric_guitar", "acoustic_guitar", "piano"
    ]
    singles = sorted(
        (task.stems[0], task.presets.get("multivocal"))
        for task in fake.tasks.values() if task.kind == "stem_separator"
    )
    assert singles == [("strings", None), ("synthesizer", None), ("vocals", "lead_back"),
                       ("wind", None)]

    expected = {*LALALAI_STEMS, "rest", "no_synth", "no_strings", "no_wind",
                "lead_vocals", "no_vocals", "no_lead_vocals"}
    assert set(stems) == expected
    assert listing(out) == {f"{name}.wav" for name in expected}
    for name, path in stems.items():
        assert path == out / f"{name}.wav"

    # Each stem holds the provider track it should: the fake scales every track
    # by its own gain, so the gain read back names the track.
    for stem in ("vocals", "drums", "bass", "electric_guitar", "acoustic_guitar", "piano"):
        expected = multi[0].track(API_LABEL[stem]).gain
        assert gain(stems[stem], song) == pytest.approx(expected, abs=2e-3)
    assert gain(stems["rest"], song) == pytest.approx(multi[0].track("no_multistem").gain, abs=2e-3)
    for stem in ("synth", "strings", "wind"):
        task = task_for(fake, API_LABEL[stem])
        assert gain(stems[stem], song) == pytest.approx(task.track(API_LABEL[stem]).gain, abs=2e-3)
        assert gain(stems[f"no_{stem}"], song) == pytest.approx(
            task.track(f"no_{API_LABEL[stem]}").gain, abs=2e-3
        )
    lead_back = task_for(fake, "vocals", "lead_back")
    for stem, label in (("backing_vocals", "vocals@1"), ("lead_vocals", "vocals@0"),
                        ("no_vocals", "no_vocals"), ("no_lead_vocals", "mix_no_lead")):
        assert gain(stems[stem], song) == pytest.approx(lead_back.track(label).gain, abs=2e-3)

    # Same rate, channels and length as the input (gain() checks the shape).
    info = sf.info(stems["vocals"])
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")

    # Charged 3 s × 10 stems; the source was deleted afterwards.
    assert before - fake.minutes_left() == pytest.approx(3 * 10 / 60)
    assert all(source.deleted for source in fake.sources.values())
    assert progress == sorted(progress) and len(set(progress)) == len(progress)
    assert progress[0] == 0 and progress[-1] == 100
    assert len(progress) > 4  # intermediate steps from uploads, polls and downloads
    # No staging or scratch folders are left beside the destination.
    assert listing(tmp_path) >= {"out"}
    assert not [name for name in listing(tmp_path) if name.startswith(".staging-")]


@pytest.mark.parametrize("stem", LALALAI_STEMS)
def test_each_stem_alone_goes_through_stem_separator(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path, stem: str
) -> None:
    stems, _ = run(engine, song, tmp_path / "out", stems=(stem,))
    assert len(fake.tasks) == 1
    if stem == "backing_vocals":
        task = task_for(fake, "vocals", "lead_back")
        assert set(stems) == {"backing_vocals", "lead_vocals", "no_vocals", "no_lead_vocals"}
        assert gain(stems["backing_vocals"], song) == pytest.approx(
            task.track("vocals@1").gain, abs=2e-3
        )
    else:
        label = API_LABEL[stem]
        task = task_for(fake, label)
        assert set(stems) == {stem, f"no_{stem}"}
        assert gain(stems[stem], song) == pytest.approx(task.track(label).gain, abs=2e-3)
        assert gain(stems[f"no_{stem}"], song) == pytest.approx(
            task.track(f"no_{label}").gain, abs=2e-3
        )
    assert fake.minutes_left() == pytest.approx(1000 - 3 / 60)


def test_multistem_and_single_stem_tasks_run_together(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    stems, _ = run(engine, song, tmp_path / "out", stems=("vocals", "drums", "synth"))
    assert set(stems) == {"vocals", "drums", "rest", "synth", "no_synth"}
    kinds = sorted((task.kind, tuple(task.stems)) for task in fake.tasks.values())
    assert kinds == [("multistem", ("vocals", "drum")), ("stem_separator", ("synthesizer",))]
    # Both tasks were polled in the same /check/ requests.
    both = set(fake.tasks)
    assert any(set(batch) == both for batch in fake.check_batches)
    assert all(len(batch) <= 2 for batch in fake.check_batches)
    assert fake.minutes_left() == pytest.approx(1000 - 3 * 3 / 60)


def test_two_stems_keeps_the_stem_and_its_complement_only(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    stems, _ = run(engine, song, tmp_path / "out", two_stems="vocals")
    assert set(stems) == {"vocals", "no_vocals"}
    (task,) = fake.tasks.values()
    assert (task.kind, task.stems, task.presets.get("multivocal")) == (
        "stem_separator", ["vocals"], None
    )


@pytest.mark.parametrize(
    ("fmt", "depth", "rate", "subtype"),
    [("flac", "24", 22050, "PCM_24"), ("wav", "float", None, "FLOAT"), ("mp3", "16", 32000, None)],
)
def test_output_format_depth_and_rate(
    engine: LalalaiEngine, song: Path, tmp_path: Path,
    fmt: str, depth: str, rate: int | None, subtype: str | None,
) -> None:
    stems, _ = run(engine, song, tmp_path / "out", stems=("bass",), format=fmt,
                   wav_depth=depth, sample_rate=rate)
    assert set(stems) == {"bass", "no_bass"}
    for path in stems.values():
        assert path.suffix == f".{fmt}"
        info = sf.info(path)
        assert info.samplerate == (rate or 44100)
        assert info.channels == 2
        if subtype is not None:
            assert info.subtype == subtype
        # The stem lasts as long as the input (MP3 adds encoder padding).
        assert info.duration == pytest.approx(3.0, abs=0.01 if fmt != "mp3" else 0.1)


def test_options_reach_the_provider_and_defaults_are_the_providers(
    make_engine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    engine = make_engine()
    run(engine, song, tmp_path / "a", stems=("drums",), splitter="phoenix",
        extraction_level="clear_cut", enhanced_processing=True)
    (task,) = fake.tasks.values()
    assert task.presets["splitter"] == "phoenix"
    assert task.presets["extraction_level"] == "clear_cut"
    assert task.presets["enhanced_processing_enabled"] is True
    # Lossless result tracks, re-encoded locally to what was asked.
    assert task.presets["encoder_format"] == "flac"

    fake.tasks.clear()
    run(engine, song, tmp_path / "b", stems=("drums", "bass"))
    (task,) = fake.tasks.values()
    assert task.presets["splitter"] == "auto"
    assert task.presets["extraction_level"] == "deep_extraction"


def test_no_backing_vocals_found_gives_a_silent_stem(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.no_backing_vocals = True
    result = engine.separate(song, SeparationOptions(stems=("backing_vocals",)), None, None,
                             tmp_path / "out")
    data, rate = sf.read(result.stems["backing_vocals"], always_2d=True)
    assert rate == 44100 and data.shape == (3 * 44100, 2)
    assert not data.any()
    assert any("backing vocals" in note for note in result.notes)


def test_mono_input_gives_mono_stems(
    engine: LalalaiEngine, tmp_path: Path
) -> None:
    from tests.support.audio import write_audio

    mono = write_audio(tmp_path / "mono.flac", seconds=2.0, rate=22050, channels=1)
    stems, _ = run(engine, mono, tmp_path / "out", stems=("piano",))
    info = sf.info(stems["piano"])
    assert (info.channels, info.samplerate, info.frames) == (1, 22050, 2 * 22050)
