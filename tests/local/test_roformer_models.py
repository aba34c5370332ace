"""RoFormer weights: download with resume and checksum, offline repository,
and the failures a person can meet (wrong checksum, truncated checkpoint, a
config that does not match its checkpoint, an unknown or missing model).

Downloads go to a real HTTP server on 127.0.0.1 (``SOUNDFORGE_MODEL_MIRROR``);
no test reaches the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soundforge.cli.main import app
from soundforge.engines.local import catalog
from soundforge.engines.local.catalog import MODELS, WeightFile
from soundforge.engines.local.loader import load_model
from soundforge.errors import ModelUnavailableError
from tests.support.audio import write_audio
from tests.support.model_server import model_server
from tests.support.tiny_roformer import write_tiny_roformer

NAME = "mel_roformer_karaoke"  # both of its files are downloaded (no packaged config)


def soundforge(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soundforge", *map(str, args)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )


@pytest.fixture
def tiny_files(tmp_path: Path) -> dict[str, bytes]:
    folder = tmp_path / "published"
    folder.mkdir()
    write_tiny_roformer(folder, NAME, seed=7)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SOUNDFORGE_MODEL_CACHE", str(folder))
    return folder


def published_as(files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the tiny files' own sizes and checksums in the catalogue entry,
    as the real entry records the published ones."""
    spec = MODELS[NAME]
    assert spec.config is not None and spec.checkpoint is not None

    def entry(file: WeightFile) -> WeightFile:
        body = files[file.filename]
        return dataclasses.replace(
            file, sha256=hashlib.sha256(body).hexdigest(), size=len(body)
        )

    monkeypatch.setitem(
        catalog.MODELS, NAME,
        dataclasses.replace(spec, config=entry(spec.config), checkpoint=entry(spec.checkpoint)),
    )


def test_an_interrupted_download_resumes_and_the_model_then_loads(
    tiny_files: dict[str, bytes], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published_as(tiny_files, monkeypatch)
    checkpoint = MODELS[NAME].checkpoint
    assert checkpoint is not None
    runner = CliRunner()
    with model_server(tiny_files) as server:
        monkeypatch.setenv("SOUNDFORGE_MODEL_MIRROR", server.url)
        server.cut_after = 4096  # the first file's transfer breaks off
        first = runner.invoke(app, ["models", "download", NAME])
        assert first.exit_code == 1
        assert "run `soundforge models download" in first.output.lower()
        assert "resumes" in first.output
        parts = list(cache.glob("*.part"))
        assert len(parts) == 1 and parts[0].stat().st_size == 4096
        with pytest.raises(ModelUnavailableError, match="unfinished download"):
            load_model(NAME, None)  # a partial file is never loaded

        second = runner.invoke(app, ["models", "download", NAME])
        assert second.exit_code == 0, second.output
        assert "resuming at 4096 bytes" in second.output
        resumed = [r for r in server.requests if r[1] is not None]
        assert resumed == [(parts[0].name[: -len(".part")], "bytes=4096-")]
    assert not list(cache.glob("*.part"))
    for name, body in tiny_files.items():
        assert (cache / name).read_bytes() == body
    model = load_model(NAME, None)
    assert set(model.sources) == {"vocals", "other"}
    again = runner.invoke(app, ["models", "download", NAME])
    assert again.exit_code == 0 and "already in" in again.output


def test_a_host_that_ignores_the_range_sends_the_whole_file_again(
    tiny_files: dict[str, bytes], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published_as(tiny_files, monkeypatch)
    checkpoint = MODELS[NAME].checkpoint
    assert checkpoint is not None
    cache.mkdir(parents=True)
    body = tiny_files[checkpoint.filename]
    (cache / f"{checkpoint.filename}.part").write_bytes(body[:5000])
    with model_server(tiny_files) as server:
        server.honour_ranges = False
        monkeypatch.setenv("SOUNDFORGE_MODEL_MIRROR", server.url)
        result = CliRunner().invoke(app, ["models", "download", NAME])
    assert result.exit_code == 0, result.output
    assert (cache / checkpoint.filename).read_bytes() == body  # not 5000 bytes twice
    assert (checkpoint.filename, "bytes=5000-") in server.requests


def test_a_file_that_does_not_match_the_published_checksum_is_refused_and_deleted(
    tiny_files: dict[str, bytes], tmp_path: Path
) -> None:
    # The real catalogue entry, a mirror serving other bytes under its names.
    cache = tmp_path / "cache"
    with model_server(tiny_files) as server:
        env = {"SOUNDFORGE_MODEL_MIRROR": server.url, "SOUNDFORGE_MODEL_CACHE": str(cache)}
        result = soundforge("models", "download", NAME, env=env)
        listed = soundforge("models", "list", "--json", env=env)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "published" in message and "deleted and not used" in message
    assert f"soundforge models download {NAME}" in message
    assert list(cache.iterdir()) == []  # neither the file nor a .part is kept
    states = {row["model"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert states[NAME]["available"] is False


def test_an_unreachable_mirror_says_what_to_do(tmp_path: Path) -> None:
    env = {"SOUNDFORGE_MODEL_MIRROR": "http://127.0.0.1:9/", "SOUNDFORGE_MODEL_CACHE":
           str(tmp_path / "cache")}
    result = soundforge("models", "download", NAME, env=env)
    assert result.returncode == 1
    assert "again" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    write_tiny_roformer(folder, NAME, seed=3)
    return folder


def test_a_truncated_checkpoint_is_refused_with_the_fix(repo: Path, tmp_path: Path) -> None:
    checkpoint = repo / "mel_band_roformer_karaoke_gabox.ckpt"
    body = checkpoint.read_bytes()
    checkpoint.write_bytes(body[: len(body) // 2])
    song = write_audio(tmp_path / "song.wav", seconds=1)
    out = tmp_path / "out"
    result = soundforge("separate", song, "-o", out, "--model", NAME,
                        env={"SOUNDFORGE_MODEL_REPO": str(repo)})
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "damaged or incomplete" in message and "models download" in message
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_a_config_that_does_not_match_the_checkpoint_is_refused(repo: Path) -> None:
    # The config of another (differently sized) network next to this checkpoint.
    config = repo / "config_mel_band_roformer_karaoke_gabox.yaml"
    config.write_text(config.read_text().replace("dim: 16", "dim: 24"))
    with pytest.raises(ModelUnavailableError, match="does not fit the network") as caught:
        load_model(NAME, repo)
    assert "published together" in caught.value.message


def test_a_config_with_other_instruments_is_refused(repo: Path) -> None:
    config = repo / "config_mel_band_roformer_karaoke_gabox.yaml"
    text = config.read_text()
    config.write_text(text.replace("- Vocals\n", "- Vocals\n  - drums\n"))
    with pytest.raises(ModelUnavailableError, match="3 instruments"):
        load_model(NAME, repo)
    config.write_text(text.replace("- Instrumental\n", "- drums\n"))
    with pytest.raises(ModelUnavailableError, match="do not name its stems"):
        load_model(NAME, repo)


def test_instruments_are_matched_by_name_not_position(repo: Path) -> None:
    model = load_model(NAME, repo)  # the config lists the rest first, then the lead
    assert model.sources == ("other", "vocals") and model.target == 1


def test_a_chunk_that_is_not_whole_stft_hops_is_refused(repo: Path) -> None:
    config = repo / "config_mel_band_roformer_karaoke_gabox.yaml"
    config.write_text(config.read_text().replace("chunk_size: 22016", "chunk_size: 22050"))
    with pytest.raises(ModelUnavailableError, match="not a whole number of STFT hops") as caught:
        load_model(NAME, repo)
    assert "such as 22016" in caught.value.message


def test_a_config_that_is_not_a_training_yaml_is_refused(repo: Path) -> None:
    (repo / "config_mel_band_roformer_karaoke_gabox.yaml").write_text("just: a mapping\n")
    with pytest.raises(ModelUnavailableError, match="not a RoFormer training config"):
        load_model(NAME, repo)


def test_a_missing_model_gets_the_same_error_as_demucs(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    song = write_audio(tmp_path / "song.wav", seconds=1)
    result = soundforge("separate", song, "-o", tmp_path / "out", "--model", NAME,
                        env={"SOUNDFORGE_MODEL_REPO": str(empty)})
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"Model {NAME} is not available" in message
    assert f"soundforge models download {NAME}" in message
    assert "SOUNDFORGE_MODEL_REPO" in message


def test_an_unknown_model_lists_the_known_ones(tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=1)
    result = soundforge("separate", song, "--model", "mel_roformer_nope", env={})
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "Unknown model 'mel_roformer_nope'" in message
    assert "bs_roformer_6s" in message and "mel_roformer_vocals" in message
