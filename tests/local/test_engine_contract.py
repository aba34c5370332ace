"""The separation contract of the local engine, through its public interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import soundforge
from soundforge.config import Settings
from soundforge.engines.base import SeparationOptions
from soundforge.engines.local.catalog import MODELS
from soundforge.engines.local.engine import LocalEngine
from tests.support.audio import write_audio


def read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data, rate


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_gives_its_stems_at_the_inputs_length_and_rate(
    engine: LocalEngine, tmp_path: Path, model: str
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2.5, rate=48000, channels=2)
    progress: list[int] = []
    stems = engine.separate(
        source, SeparationOptions(model=model), progress.append, None, tmp_path / "out"
    ).stems
    assert set(stems) == set(MODELS[model].stems)
    for name, path in stems.items():
        assert path == tmp_path / "out" / f"{name}.wav"
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (48000, 2, 2.5 * 48000)
    assert progress[0] == 0 and progress[-1] == 100
    assert progress == sorted(progress) and len(set(progress)) == len(progress)
    # Nothing but the stems is left behind (no staging folders).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out"]


def test_two_stems_complement_is_the_sum_of_the_other_stems(
    engine: LocalEngine, tmp_path: Path
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=3)
    opts = SeparationOptions(wav_depth="float", seed=3)
    four = engine.separate(source, opts, None, None, tmp_path / "four").stems
    two = engine.separate(
        source, opts.with_changes(two_stems="vocals"), None, None, tmp_path / "two"
    ).stems
    assert set(two) == {"vocals", "no_vocals"}
    others = sum(read(four[name])[0] for name in ("drums", "bass", "other"))
    no_vocals, _ = read(two["no_vocals"])
    vocals, _ = read(two["vocals"])
    np.testing.assert_allclose(no_vocals, others, atol=1e-5)
    np.testing.assert_allclose(vocals, read(four["vocals"])[0], atol=1e-6)
    assert np.abs(vocals).max() > 1e-4  # the model really produced something


def test_subset_of_stems_writes_only_those(engine: LocalEngine, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2)
    stems = engine.separate(
        source, SeparationOptions(model="htdemucs_6s", stems=("guitar", "piano")), None, None,
        tmp_path / "out",
    ).stems
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["guitar.wav", "piano.wav"]
    assert set(stems) == {"guitar", "piano"}


def test_mono_low_rate_input_gives_mono_stems_at_that_rate(
    engine: LocalEngine, tmp_path: Path
) -> None:
    source = write_audio(tmp_path / "in.flac", seconds=2, rate=22050, channels=1)
    options = SeparationOptions(format="flac")
    stems = engine.separate(source, options, None, None, tmp_path / "o").stems
    for path in stems.values():
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (22050, 1, 44100)
        assert info.format == "FLAC"


def test_output_sample_rate_can_be_asked_for(engine: LocalEngine, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2, rate=22050, channels=1)
    stems = engine.separate(
        source, SeparationOptions(sample_rate=44100, stems=("vocals",)), None, None, tmp_path / "o"
    ).stems
    info = sf.info(str(stems["vocals"]))
    assert (info.samplerate, info.frames) == (44100, 88200)


@pytest.mark.parametrize(
    ("fmt", "depth", "subtype"),
    [("wav", "16", "PCM_16"), ("wav", "24", "PCM_24"), ("wav", "float", "FLOAT"),
     ("flac", "24", "PCM_24"), ("mp3", "16", "MPEG_LAYER_III")],
)
def test_output_formats(
    engine: LocalEngine, tmp_path: Path, fmt: str, depth: str, subtype: str
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=1)
    stems = engine.separate(
        source, SeparationOptions(format=fmt, wav_depth=depth, stems=("vocals",)),  # type: ignore[arg-type]
        None, None, tmp_path / "o",
    ).stems
    info = sf.info(str(stems["vocals"]))
    assert info.subtype == subtype
    assert stems["vocals"].suffix == f".{fmt}"
    # MP3 adds the codec's own delay/padding (under one frame of 1152 samples
    # plus the encoder delay); lossless formats are exact.
    tolerance = 2 * 1152 + 1105 if fmt == "mp3" else 0
    assert abs(info.frames - 44100) <= tolerance


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg", ".m4a"])
def test_reads_common_formats(engine: LocalEngine, tmp_path: Path, suffix: str) -> None:
    source = write_audio(tmp_path / f"in{suffix}", seconds=1, rate=44100)
    stems = engine.separate(
        source, SeparationOptions(stems=("vocals",)), None, None, tmp_path / "o"
    ).stems
    data, rate = read(stems["vocals"])
    assert rate == 44100
    # Lossy containers add encoder priming; the stem follows the decoded length.
    assert abs(data.shape[0] - 44100) < 4096


def test_silence_in_silent_stems_out(engine: LocalEngine, tmp_path: Path) -> None:
    """Silence (std 0) is not divided by zero: finite, silent stems of its length."""
    source = tmp_path / "silence.wav"
    sf.write(str(source), np.zeros((44100 * 2, 2), np.float32), 44100)
    stems = engine.separate(source, SeparationOptions(), None, None, tmp_path / "o").stems
    assert len(stems) == 4
    for path in stems.values():
        data, _ = read(path)
        assert data.shape == (88200, 2)
        assert np.isfinite(data).all() and np.abs(data).max() < 1e-3


def test_a_warm_runner_does_not_reload_the_model(tiny_repo: Path, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=1)
    with LocalEngine(Settings(model_repo=tiny_repo)) as local:
        first = local.separate(source, SeparationOptions(), None, None, tmp_path / "a")
        second = local.separate(
            source, SeparationOptions(two_stems="bass"), None, None, tmp_path / "b"
        )
        pid = local.port.pid
    assert first.reused is False and second.reused is True
    # Both runs say how long the load and the whole run took.
    assert {"load", "total"} <= set(first.timings) and {"load", "total"} <= set(second.timings)
    assert pid is not None


def test_python_api(model_env: Path, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "track one.wav", seconds=1.5)
    stems = soundforge.separate(source, tmp_path / "out", two_stems="vocals", stems=None)
    assert stems == {
        "vocals": tmp_path / "out" / "track one" / "vocals.wav",
        "no_vocals": tmp_path / "out" / "track one" / "no_vocals.wav",
    }
    assert all(path.is_file() for path in stems.values())
