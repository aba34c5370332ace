"""The runner process speaks the seed's NDJSON protocol on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from soundforge.engines.base import SeparationOptions
from soundforge.engines.local import allocator
from soundforge.engines.local.request import RunRequest
from tests.support.audio import write_audio


def run_runner(lines: list[str], answers: int) -> list[dict]:
    """Send ``lines``, collect messages until ``answers`` final ones (result or
    error) arrived, then shut the runner down (a shutdown or end of stdin
    abandons work in progress, so it comes last)."""
    runner = subprocess.Popen(
        [sys.executable, "-m", "soundforge.engines.local.runner"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert runner.stdin is not None and runner.stdout is not None
    try:
        runner.stdin.write("".join(line + "\n" for line in lines))
        runner.stdin.flush()
        messages: list[dict] = []
        # Every stdout line is a protocol message (logs go to stderr).
        for line in runner.stdout:
            messages.append(json.loads(line))
            if sum(m["type"] in ("result", "error") for m in messages) == answers:
                break
        runner.stdin.write(json.dumps({"type": "shutdown"}) + "\n")
        runner.stdin.close()
        assert runner.wait(timeout=60) == 0
    finally:
        runner.kill()
    return messages


def request(folder: Path, tiny_repo: Path, rid: str, **options: object) -> dict:
    source = write_audio(folder / f"{rid}.wav", seconds=1)
    out = folder / f"out-{rid}"
    out.mkdir()
    return RunRequest.build(
        rid, source, out, SeparationOptions(**options), repo=tiny_repo,  # type: ignore[arg-type]
        device="cpu", threads=1,
    ).to_message()


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory, tiny_repo: Path) -> list[dict]:
    """One runner's answers to a line of garbage, a good request and a bad one,
    sent in that order (the tests below read different parts of it)."""
    folder = tmp_path_factory.mktemp("protocol")
    good = request(folder, tiny_repo, "a")
    bad = request(folder, tiny_repo, "b", model="nope")
    roformer = request(folder, tiny_repo, "c", model="mel_roformer_vocals")
    lines = ["not json", json.dumps(good), json.dumps(bad), json.dumps(roformer)]
    return run_runner(lines, answers=4)


def test_message_order_progress_then_result_then_error(conversation: list[dict]) -> None:
    first = [m for m in conversation if m.get("id") == "a"]
    assert {m["type"] for m in first[:-1]} == {"progress"}
    percents = [m["percent"] for m in first[:-1]]
    assert percents == sorted(percents) and percents[0] == 0
    result = first[-1]
    assert result["type"] == "result"
    assert set(result["stems"]) == {"drums", "bass", "other", "vocals"}
    for path in result["stems"].values():
        assert Path(path).is_absolute() and Path(path).is_file()
    # The runner keeps a Demucs job's large buffers on the heap where glibc lets
    # it, and a RoFormer job's not (allocator.py).
    assert result["large_buffers_on_heap"] is (allocator.glibc() is not None)
    roformer = [m for m in conversation if m.get("id") == "c"][-1]
    assert roformer["type"] == "result"
    assert roformer["large_buffers_on_heap"] is False
    second = [m for m in conversation if m.get("id") == "b"]
    assert [m["type"] for m in second] == ["error"]
    assert "Unknown model 'nope'" in second[0]["message"]
    assert second[0]["code"] == "invalid_option"
    # The result came before the next request's error.
    assert conversation.index(result) < conversation.index(second[0])


def test_garbage_on_stdin_is_answered_not_fatal(conversation: list[dict]) -> None:
    assert conversation[0]["type"] == "error" and conversation[0]["code"] == "protocol_error"
    # The runner went on: the request after the garbage was separated.
    assert [m["type"] for m in conversation if m.get("id") == "a"][-1] == "result"


@pytest.mark.parametrize("close_stdin", [True, False])
def test_an_orphaned_runner_exits_quietly(
    tmp_path: Path, tiny_repo: Path, close_stdin: bool
) -> None:
    """Its worker was SIGKILLed: the pipes are gone. The runner must stop at its
    next write without a BrokenPipe traceback (and, with stdin still open, must
    not go on computing for nobody)."""
    source = write_audio(tmp_path / "long.wav", seconds=30)
    out = tmp_path / "out"
    out.mkdir()
    message = RunRequest.build("orphan", source, out, SeparationOptions(), repo=tiny_repo,
                               device="cpu", threads=1).to_message()
    with open(tmp_path / "stderr.log", "w") as errors:
        runner = subprocess.Popen(
            [sys.executable, "-m", "soundforge.engines.local.runner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
        )
        assert runner.stdin is not None and runner.stdout is not None
        try:
            runner.stdin.write(json.dumps(message) + "\n")
            runner.stdin.flush()
            for line in runner.stdout:  # wait until it is computing
                if json.loads(line).get("percent", 0) > 0:
                    break
            runner.stdout.close()  # the worker is gone: nobody reads any more
            if close_stdin:
                runner.stdin.close()
            assert runner.wait(timeout=120) == 0
        finally:
            runner.kill()
    log = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in log and "BrokenPipe" not in log, log
