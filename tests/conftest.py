"""Shared fixtures: tiny Demucs models, test audio, an isolated environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.audio import write_audio
from tests.support.tiny_models import build_tiny_repo

ROOT = Path(__file__).resolve().parents[1]
SOUNDFORGE_BIN = ROOT / ".venv" / "bin" / "soundforge"


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random-weight versions of every offered model, in LocalRepo format."""
    return build_tiny_repo(tmp_path_factory.mktemp("model-repo"))


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own configuration or data."""
    for name in list(os.environ):
        if name.startswith("SOUNDFORGE_") or name in (
            "LALALAI_API_KEY", "SYSTEM_LALALAI_ACTIVATION_KEY",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOUNDFORGE_DATA_DIR", str(tmp_path / "data"))
    # RoFormer downloads: never the developer's own cache.
    monkeypatch.setenv("SOUNDFORGE_MODEL_CACHE", str(tmp_path / "model-cache"))
    # Two pytest workers share the machine's cores: a runner each on every core
    # would only fight over them. Tests that are about threads set their own.
    monkeypatch.setenv("SOUNDFORGE_THREADS", "1")
    # Retries of a failing fake provider, without the real back-off's seconds.
    monkeypatch.setenv("SOUNDFORGE_LALALAI_RETRY_BASE_DELAY", "0.01")
    # Never reach for the network: the hub is unreachable on test machines anyway.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def model_env(monkeypatch: pytest.MonkeyPatch, tiny_repo: Path) -> Path:
    monkeypatch.setenv("SOUNDFORGE_MODEL_REPO", str(tiny_repo))
    return tiny_repo


@pytest.fixture
def song(tmp_path: Path) -> Path:
    """Three seconds of stereo audio at 44.1 kHz."""
    return write_audio(tmp_path / "song.wav", seconds=3.0)
