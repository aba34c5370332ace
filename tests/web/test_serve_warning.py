"""``soundforge serve`` says at start when local separations cannot work:
the default model is not on this machine and cannot be fetched (issue 15)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start_and_read_banner(tmp_path: Path, repo: Path) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SOUNDFORGE_")}
    env.update({"SOUNDFORGE_DATA_DIR": str(tmp_path / "data"), "SOUNDFORGE_PORT": str(port),
                "SOUNDFORGE_MODEL_REPO": str(repo), "HF_HUB_OFFLINE": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "soundforge", "serve", "--no-worker"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.startswith("SoundForge: http"):
                break
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert any(line.startswith("SoundForge: http") for line in lines), "".join(lines)
    return "".join(lines)


@pytest.mark.timeout(120)
def test_serve_warns_when_the_default_model_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    banner = _start_and_read_banner(tmp_path, empty)
    assert "Warning: local separations with the default model will fail" in banner
    assert "htdemucs" in banner and "soundforge models download htdemucs" in banner


@pytest.mark.timeout(120)
def test_serve_is_quiet_when_the_default_model_is_there(tmp_path: Path) -> None:
    from tests.support.tiny_models import build_tiny_repo

    repo = build_tiny_repo(tmp_path / "models", names=("htdemucs",))
    assert "Warning" not in _start_and_read_banner(tmp_path, repo)
