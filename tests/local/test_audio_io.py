"""Audio in and out: resampling quality, exact lengths, staging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundforge.audio import StemWriter, probe, read_audio
from soundforge.errors import OutputError
from soundforge.storage.staging import StagingDir, staging_for
from tests.support.audio import snr_db, write_audio


def band_limited(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)).astype(
        np.float32
    )


def test_resampling_round_trip_is_transparent(tmp_path: Path) -> None:
    original = band_limited(3, 48000)
    sf.write(str(tmp_path / "in.wav"), original, 48000, subtype="FLOAT")
    at_model_rate, info = read_audio(tmp_path / "in.wav", 44100, 2)
    assert at_model_rate.shape == (2, 3 * 44100)
    assert info.sample_rate == 48000 and info.channels == 1
    writer = StemWriter(tmp_path / "out.wav", "wav", 48000, 1, 44100, 2, wav_depth="float")
    for start in range(0, at_model_rate.shape[1], 10_000):  # odd block sizes on purpose
        writer.write(at_model_rate[:, start : start + 10_000])
    writer.finish(3 * 48000)
    back, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert rate == 48000 and back.shape == original.shape
    # Away from the edges the round trip is transparent.
    assert snr_db(original[4800:-4800], back[4800:-4800]) > 60


def test_probe_describes_the_file(tmp_path: Path) -> None:
    info = probe(write_audio(tmp_path / "a.flac", seconds=2, rate=32000, channels=1))
    assert (info.sample_rate, info.channels, info.codec, round(info.duration, 3)) == (
        32000, 1, "flac", 2.0,
    )


def test_staging_moves_files_only_on_commit(tmp_path: Path) -> None:
    destination = tmp_path / "stems" / "job"
    with staging_for(destination) as staging:
        staging.file("vocals.wav").write_bytes(b"x")
        assert not destination.exists()
        moved = staging.commit()
    assert moved == {"vocals.wav": destination / "vocals.wav"}
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == ["job"]


def test_staging_discards_on_error(tmp_path: Path) -> None:
    destination = tmp_path / "stems" / "job"
    with pytest.raises(RuntimeError), staging_for(destination) as staging:
        staging.file("vocals.wav").write_bytes(b"half")
        raise RuntimeError("engine failed")
    assert list((tmp_path / "stems").iterdir()) == []


def test_staging_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"is a file, not a folder|Cannot write"):
        StagingDir(tmp_path / "file" / "job")
