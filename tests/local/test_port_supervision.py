"""DemucsPort: crash restart, stall timeout, cancel; nothing half-written after each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from soundforge.config import Settings
from soundforge.engines.base import CancelToken, SeparationOptions
from soundforge.engines.local.engine import LocalEngine
from soundforge.engines.local.request import RunRequest
from soundforge.errors import CancelledError, EngineError, EngineTimeoutError
from tests.support.audio import write_audio


def only_source_left(folder: Path, *keep: str) -> bool:
    return sorted(p.name for p in folder.iterdir()) == sorted(keep)


def test_runner_killed_mid_job_is_reported_and_restarted(tiny_repo: Path, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=8)
    with LocalEngine(Settings(model_repo=tiny_repo)) as engine:
        killed = threading.Event()

        def on_progress(percent: int) -> None:
            if percent > 0 and not killed.is_set():
                killed.set()
                os.kill(engine.port.pid, signal.SIGKILL)  # type: ignore[arg-type]

        with pytest.raises(EngineError) as caught:
            engine.separate(source, SeparationOptions(), on_progress, None, tmp_path / "out")
        assert "stopped while separating" in caught.value.message
        assert "SIGKILL" in caught.value.message
        assert str(source) in caught.value.message
        assert only_source_left(tmp_path, "in.wav")
        # The next job gets a fresh runner and works (a short one: only that it works).
        short = write_audio(tmp_path / "short.wav", seconds=1)
        stems = engine.separate(short, SeparationOptions(two_stems="vocals"), None, None,
                                tmp_path / "out").stems
        assert set(stems) == {"vocals", "no_vocals"}
        assert engine.port.starts == 2


def test_stall_detector_kills_a_runner_that_stops_reporting(
    tiny_repo: Path, tmp_path: Path
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=8)
    with LocalEngine(Settings(model_repo=tiny_repo, demucs_timeout=120)) as engine:
        frozen: list[int] = []

        def on_progress(percent: int) -> None:
            if percent > 0 and not frozen:
                pid = engine.port.pid
                assert pid is not None
                frozen.append(pid)
                # Short only from here: start-up and model loading are not under test.
                engine.port.stall_timeout = 1.5
                os.kill(pid, signal.SIGSTOP)  # a hung runner: alive but silent

        with pytest.raises(EngineTimeoutError) as caught:
            engine.separate(source, SeparationOptions(), on_progress, None, tmp_path / "out")
        assert "no progress for 1.5 s" in caught.value.message
        assert "SOUNDFORGE_DEMUCS_TIMEOUT" in caught.value.message
        assert only_source_left(tmp_path, "in.wav")
        with pytest.raises(ProcessLookupError):
            os.kill(frozen[0], 0)
        engine.port.stall_timeout = 120
        short = write_audio(tmp_path / "short.wav", seconds=1)
        assert set(engine.separate(short, SeparationOptions(stems=("bass",)), None, None,
                                   tmp_path / "out").stems) == {"bass"}


def test_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUNDFORGE_DEMUCS_TIMEOUT", "42")
    monkeypatch.setenv("SOUNDFORGE_DEMUCS_MAX_TIME", "3600")
    engine = LocalEngine()
    assert (engine.port.stall_timeout, engine.port.max_time) == (42, 3600)


def test_hard_time_ceiling(tiny_repo: Path, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=8)
    with LocalEngine(Settings(model_repo=tiny_repo, demucs_max_time=0.5)) as engine:
        with pytest.raises(EngineTimeoutError) as caught:
            engine.separate(source, SeparationOptions(), None, None, tmp_path / "out")
        assert "SOUNDFORGE_DEMUCS_MAX_TIME" in caught.value.message
        assert only_source_left(tmp_path, "in.wav")


def test_cancel_stops_the_job_and_keeps_the_runner(tiny_repo: Path, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=8)
    # The runs before and after the cancelled one only load and reuse the model.
    short = write_audio(tmp_path / "short.wav", seconds=1)
    with LocalEngine(Settings(model_repo=tiny_repo)) as engine:
        engine.separate(short, SeparationOptions(stems=("drums",)), None, None, tmp_path / "warm")
        pid = engine.port.pid
        token = CancelToken()

        def on_progress(percent: int) -> None:
            if percent > 0:
                token.cancel()

        with pytest.raises(CancelledError):
            engine.separate(source, SeparationOptions(), on_progress, token, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        assert only_source_left(tmp_path, "in.wav", "short.wav", "warm")
        # Same process, model still loaded: cancel did not cost a reload.
        again = engine.separate(
            short, SeparationOptions(stems=("drums",)), None, None, tmp_path / "again"
        )
        assert engine.port.pid == pid
        assert again.reused is True


def test_cancel_before_start_runs_nothing(tiny_repo: Path, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=1)
    token = CancelToken()
    token.cancel()
    with LocalEngine(Settings(model_repo=tiny_repo)) as engine:
        with pytest.raises(CancelledError):
            engine.separate(source, SeparationOptions(), None, token, tmp_path / "out")
        assert engine.port.starts == 0


def test_runner_stops_working_when_its_supervisor_goes_away(
    tiny_repo: Path, tmp_path: Path
) -> None:
    """A SIGKILLed worker closes the runner's stdin: the runner must not compute on."""
    source = write_audio(tmp_path / "in.wav", seconds=30)
    out = tmp_path / "out"
    out.mkdir()
    message = RunRequest.build("x", source, out, SeparationOptions(model="htdemucs_ft"),
                               repo=tiny_repo, device="cpu", threads=1).to_message()
    runner = subprocess.Popen(
        [sys.executable, "-m", "soundforge.engines.local.runner"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert runner.stdin is not None and runner.stdout is not None
    runner.stdin.write(json.dumps(message) + "\n")
    runner.stdin.flush()
    for line in runner.stdout:  # wait until it is separating
        if json.loads(line).get("stage") == "separating":
            break
    runner.stdin.close()  # what the kernel does when the supervisor dies
    try:
        code = runner.wait(timeout=60)
    finally:
        runner.kill()
    assert code == 0
    remaining = [json.loads(line) for line in runner.stdout.read().splitlines()]
    assert remaining and remaining[-1]["type"] == "error"
    assert remaining[-1]["code"] == "cancelled"
    # (Partial files in the staging folder are the engine's to discard.)
    assert not any(m["type"] == "result" for m in remaining)
