"""``soundforge separate --engine lalalai`` as a user runs it: a subprocess
pointed at the fake server through SOUNDFORGE_LALALAI_URL and LALALAI_API_KEY."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from soundforge.stems import LALALAI_STEMS
from tests.conftest import SOUNDFORGE_BIN
from tests.support.cli import CliRun, run_cli
from tests.support.fake_lalalai import FakeLalalai


def soundforge(fake: FakeLalalai, *args: str, key: str | None = None, **env: str) -> CliRun:
    """``soundforge separate --engine lalalai …`` in this process (see
    ``tests/support/cli.py``). What needs a process of its own (signals, SIGKILL,
    a record named after the process id) runs the real command: see
    ``separate_process``."""
    environment = {**fake.env(key), "SOUNDFORGE_LALALAI_POLL_INTERVAL": "0.02", **env}
    return run_cli("separate", "--engine", "lalalai", *args, env=environment)


def separate_process(fake: FakeLalalai, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """The installed ``soundforge separate --engine lalalai …`` as its own process."""
    environment = {**os.environ, **fake.env(), "SOUNDFORGE_LALALAI_POLL_INTERVAL": "0.02"}
    return subprocess.Popen(
        [str(SOUNDFORGE_BIN), "separate", "--engine", "lalalai", *args],
        text=True, env=environment, **popen,
    )


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_every_stem_type_with_progress(fake: FakeLalalai, song: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = soundforge(fake, str(song), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    messages = json_lines(done.stdout)
    percents = [m["percent"] for m in messages if m["type"] == "progress"]
    assert percents[0] == 0 and percents[-1] == 100 and percents == sorted(percents)
    assert len(percents) > 5
    (result,) = [m for m in messages if m["type"] == "result"]
    expected = {*LALALAI_STEMS, "rest", "no_synth", "no_strings", "no_wind", "lead_vocals",
                "no_vocals", "no_lead_vocals"}
    assert set(result["stems"]) == expected
    folder = out / "song"
    assert {path.name for path in folder.iterdir()} == {f"{name}.wav" for name in expected}
    assert sf.info(folder / "synth.wav").frames == 3 * 44100
    assert all(source.deleted for source in fake.sources.values())
    assert len(fake.tasks) == 5


def test_chosen_stems_and_format(fake: FakeLalalai, song: Path, tmp_path: Path) -> None:
    done = soundforge(fake, str(song), "-o", str(tmp_path / "out"),
                      "--stems", "vocals,synth", "--format", "flac")
    assert done.returncode == 0, done.stderr
    names = {path.name for path in (tmp_path / "out" / "song").iterdir()}
    assert names == {"vocals.flac", "no_vocals.flac", "synth.flac", "no_synth.flac"}
    assert "4 stems" in done.stdout


def test_preview(fake: FakeLalalai, long_song: Path, tmp_path: Path) -> None:
    done = soundforge(fake, str(long_song), "-o", str(tmp_path / "out"), "--stems", "bass",
                      "--preview", "--format", "mp3")
    assert done.returncode == 0, done.stderr
    (source,) = fake.sources.values()
    assert source.duration == 60
    assert fake.minutes_left() == 999.0
    info = sf.info(tmp_path / "out" / "long song" / "bass.mp3")
    assert abs(info.duration - 60) < 0.2


def test_wrong_key_is_a_clear_error_without_the_key(
    fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    done = soundforge(fake, str(song), "-o", str(tmp_path / "out"), key="wrong-key-987654321")
    assert done.returncode == 1
    assert "refused the license key" in done.stderr
    assert "wrong-key-987654321" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_not_enough_minutes(fake: FakeLalalai, song: Path, tmp_path: Path) -> None:
    fake.set_minutes(0.05)
    done = soundforge(fake, str(song), "-o", str(tmp_path / "out"), "--stems", "vocals,drums",
                      "--json")
    assert done.returncode == 1
    (error,) = [m for m in json_lines(done.stdout) if m["type"] == "error"]
    assert error["code"] == "quota_exceeded"
    assert "needs 0.1 minutes" in error["message"]
    assert fake.calls["upload"] == 0
    assert not (tmp_path / "out" / "song").exists()


def test_task_failure_reports_the_providers_words(
    fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.fail_tasks("piano", detail="No piano detected in the uploaded file")
    done = soundforge(fake, str(song), "-o", str(tmp_path / "out"), "--stems", "piano", "--json")
    assert done.returncode == 1
    (error,) = [m for m in json_lines(done.stdout) if m["type"] == "error"]
    assert error["code"] == "provider_task_failed"
    assert error["message"] == (
        "LALAL.AI could not extract piano: No piano detected in the uploaded file"
    )


def test_no_key_says_how_to_set_one(fake: FakeLalalai, song: Path, tmp_path: Path) -> None:
    done = soundforge(fake, str(song), "-o", str(tmp_path / "out"), LALALAI_API_KEY="",
                      SYSTEM_LALALAI_ACTIVATION_KEY="")
    assert done.returncode == 2, "no key is a usage error, like a bad option"
    assert "LALALAI_API_KEY" in done.stderr and "SYSTEM_LALALAI_ACTIVATION_KEY" in done.stderr
    assert sum(fake.calls.values()) == 0


def test_bad_option_is_a_usage_error(fake: FakeLalalai, song: Path, tmp_path: Path) -> None:
    done = soundforge(fake, str(song), "-o", str(tmp_path / "out"), "--stems", "synth",
                      "--splitter", "perseus")
    assert done.returncode == 2
    assert "phoenix" in done.stderr
    assert sum(fake.calls.values()) == 0


@pytest.mark.parametrize(("sig", "code", "word"), [
    (signal.SIGTERM, 143, "terminated"),
    (signal.SIGINT, 130, "interrupted"),
])
def test_a_stopped_run_cancels_its_provider_tasks(
    fake: FakeLalalai, song: Path, tmp_path: Path, sig: signal.Signals, code: int, word: str
) -> None:
    """Killing the command (a service manager's SIGTERM, or Ctrl-C) must not
    leave paid tasks running at LALAL.AI or stems half-written."""
    fake.hold()  # tasks stay in progress until released
    out = tmp_path / "out"
    proc = separate_process(fake, str(song), "-o", str(out), "--stems", "vocals,drums",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Every task is started before the first check, so once one is polled
        # all of them exist and are being charged.
        fake.wait_for(lambda: any(task.started for task in fake.tasks.values()))
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        fake.release()
    assert proc.returncode == code, stderr
    assert f"{word}; stems of the unfinished file were not written." in stderr
    assert "Traceback" not in stderr
    assert {task.cancelled_by for task in fake.tasks.values()} == {"cancel"}
    assert all(source.deleted for source in fake.sources.values())
    assert not (out / "song").exists() or not any((out / "song").iterdir())


def test_the_next_run_releases_what_a_killed_run_left(
    fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    """SIGKILL leaves no chance to clean up: the uploaded audio and unfinished
    tasks stay at the provider until the next run with the same key."""
    fake.hold()
    killed = separate_process(fake, str(song), "-o", str(tmp_path / "first"),
                              "--stems", "vocals,drums",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        fake.wait_for(lambda: any(task.started for task in fake.tasks.values()))
        killed.kill()
        killed.wait(timeout=30)
    finally:
        killed.kill()
    left = {task.id for task in fake.tasks.values()}
    (source,) = fake.sources.values()
    assert not source.deleted and {t.status for t in fake.tasks.values()} == {"progress"}
    records = list((Path(os.environ["SOUNDFORGE_DATA_DIR"]) / "lalalai" / "running").iterdir())
    assert len(records) == 1 and fake.key not in records[0].read_text()

    fake.release()
    done = soundforge(fake, str(song), "-o", str(tmp_path / "second"), "--stems", "bass")
    assert done.returncode == 0, done.stderr
    assert "An earlier run was killed before it could clean up." in done.stderr
    assert {fake.tasks[task_id].cancelled_by for task_id in left} == {"cancel"}
    assert all(s.deleted for s in fake.sources.values())
    assert not any(records[0].parent.iterdir()), "both runs' records are gone"
    assert (tmp_path / "second" / "song" / "bass.wav").is_file()


def test_a_live_run_or_another_key_is_left_alone(
    fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    running = Path(os.environ["SOUNDFORGE_DATA_DIR"]) / "lalalai" / "running"
    running.mkdir(parents=True)
    host = socket.gethostname()
    # A live process (this test's own), and a dead one that used another key.
    (running / f"{host}-{os.getpid()}.json").write_text(
        json.dumps({"key": "x", "source_id": "s1", "task_ids": ["t1"]}))
    (running / f"{host}-999999.json").write_text(
        json.dumps({"key": "key-0000000000000000", "source_id": "s2", "task_ids": ["t2"]}))
    # Its own process: in this one, the run's record would take the planted
    # live record's name (both are named after the process id).
    proc = separate_process(fake, str(song), "-o", str(tmp_path / "out"), "--stems", "bass",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "earlier run" not in stderr
    assert fake.calls["cancel"] == 0 and fake.calls["delete"] == 1  # its own source only
    assert len(list(running.iterdir())) == 2


def test_a_record_that_cannot_be_written_does_not_stop_the_run(
    fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    blocked = Path(os.environ["SOUNDFORGE_DATA_DIR"]) / "lalalai" / "running"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the folder should be")
    done = soundforge(fake, str(song), "-o", str(tmp_path / "out"), "--stems", "bass")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "song" / "bass.wav").is_file()
    assert all(source.deleted for source in fake.sources.values())
