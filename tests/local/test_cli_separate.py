"""``soundforge separate`` as a user runs it: bad inputs, clear errors, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundforge.engines.local.catalog import MODELS
from tests.support.audio import write_audio


def soundforge(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soundforge", *map(str, args)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}, cwd=cwd,
    )


def stem_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input with the words its error must contain."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    cases: dict[str, tuple[Path, str]] = {}
    cases["missing"] = (folder / "missing.wav", "no such file")
    (folder / "a folder.wav").mkdir()
    cases["directory"] = (folder / "a folder.wav", "is a folder")
    (folder / "empty.mp3").write_bytes(b"")
    cases["empty"] = (folder / "empty.mp3", "empty (0 bytes)")
    (folder / "notes.mp3").write_text("these are my lyrics, not audio\n" * 50)
    cases["text"] = (folder / "notes.mp3", "not a readable audio file")
    whole = write_audio(folder / "whole.wav", seconds=4).read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    cases["truncated"] = (folder / "truncated.wav", "truncated")
    mp3 = write_audio(folder / "whole.mp3", seconds=4).read_bytes()
    damaged = bytearray(mp3)
    damaged[len(mp3) // 2 : len(mp3) // 2 + 3000] = np.random.default_rng(1).bytes(3000)
    (folder / "corrupt.mp3").write_bytes(bytes(damaged))
    cases["corrupt"] = (folder / "corrupt.mp3", "corrupt")
    sf.write(str(folder / "zero.wav"), np.zeros((0, 2), np.float32), 44100)
    cases["zero-length"] = (folder / "zero.wav", "zero length")
    return cases


def test_each_bad_input_gets_its_error_and_the_next_file_still_works(
    model_env: Path, tmp_path: Path, bad_inputs: dict[str, tuple[Path, str]]
) -> None:
    good = write_audio(tmp_path / "good.wav", seconds=1)
    out = tmp_path / "out"
    paths = [path for path, _ in bad_inputs.values()]
    # The good file also shows htdemucs_6s (-n) accepted with its guitar and piano.
    done = soundforge("separate", *paths, good, "-o", out, "-n", "htdemucs_6s",
                      "--stems", "guitar,piano", "--format", "flac")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(bad_inputs), done.stderr
    for (path, words), line in zip(bad_inputs.values(), errors, strict=True):
        assert str(path) in line, line
        assert words in line, line
    assert "Traceback" not in done.stderr
    # Only the good file produced stems, and no staging folder is left anywhere.
    assert stem_files(out) == ["good/guitar.flac", "good/piano.flac"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "htdemucs_7s"], "Unknown model 'htdemucs_7s'"),
        (["--stems", "guitar"], "Model htdemucs has no stem 'guitar'"),
        (["--two-stems", "piano", "--model", "mdx_extra"], "Model mdx_extra has no stem 'piano'"),
        (["--format", "aiff"], "Unknown output format 'aiff'"),
        # --device cuda on this CPU-only build: test_device_choice.py's CLI case
        # (cuda:7), with these same checks.
        (["--overlap", "1.5"], "--overlap"),
        (["--engine", "magic"], "Unknown engine 'magic'"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    model_env: Path, song: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    done = soundforge("separate", song, "-o", tmp_path / "out", *args)
    assert done.returncode != 0
    assert words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "out").exists()


def test_output_folder_that_cannot_be_written(model_env: Path, song: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    done = soundforge("separate", song, "-o", blocker / "out")
    assert done.returncode == 1
    assert "Cannot write to" in done.stderr and str(blocker) in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_output_folder(model_env: Path, song: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    done = soundforge("separate", song, "-o", locked)
    assert done.returncode == 1 and "permission denied" in done.stderr


def test_missing_model_says_which_why_and_how_to_fix(tmp_path: Path, song: Path) -> None:
    empty_repo = tmp_path / "repo"
    empty_repo.mkdir()
    done = soundforge("separate", song, "-o", tmp_path / "out",
                      env={"SOUNDFORGE_MODEL_REPO": str(empty_repo)})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Model htdemucs is not available" in lines[0]
    assert "soundforge models download htdemucs" in lines[0]
    assert not (tmp_path / "out" / "song").exists()


def test_missing_model_without_repo_and_without_network(tmp_path: Path, song: Path) -> None:
    # No SOUNDFORGE_MODEL_REPO, an empty HF cache and no reachable hub (as here).
    done = soundforge("separate", song, "-o", tmp_path / "out",
                      env={"HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "t")})
    assert done.returncode == 1
    assert "Model htdemucs" in done.stderr
    assert "soundforge models download htdemucs" in done.stderr
    assert "Traceback" not in done.stderr


# --json mode (a protocol message per line, per input, progress then result):
# test_ensembles.py's two-inputs run (a WAV and a FLAC, --two-stems vocals).


def test_models_list_shows_every_model_and_where_it_is(model_env: Path) -> None:
    done = soundforge("models", "list", "--json")
    assert done.returncode == 0
    rows = list(map(json.loads, done.stdout.splitlines()))
    models = {m["model"]: m for m in rows if m["kind"] == "model"}
    assert set(models) == {"htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra",
                           "bs_roformer_6s", "bs_roformer_vocals", "mel_roformer_vocals",
                           "mel_roformer_karaoke"}
    assert models["htdemucs_6s"]["stems"] == ["drums", "bass", "other", "vocals", "guitar", "piano"]
    assert models["htdemucs_ft"]["is_bag"] and not models["htdemucs"]["is_bag"]
    assert all(m["available"] for m in models.values())
    # RoFormer rows say where they come from.
    kim = models["mel_roformer_vocals"]
    assert kim["family"] == "mel_band_roformer" and kim["author"] == "Kimberley Jensen"
    assert kim["published_quality"].startswith("vocals 12.60 dB")
    assert kim["published_quality_source"].startswith("https://")
    assert kim["available"] is True and kim["where"].startswith("repo ")
    table = soundforge("models", "list")
    assert table.returncode == 0
    assert "htdemucs_6s" in table.stdout and "guitar" in table.stdout
    for name in (n for n, spec in MODELS.items() if spec.is_roformer):
        assert name in table.stdout  # never cut short: it is what people type


def test_models_download_offline_is_a_clear_error(tmp_path: Path) -> None:
    done = soundforge("models", "download", "htdemucs_ft", env={"HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 1
    assert "Cannot download model htdemucs_ft" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
