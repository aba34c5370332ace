"""Temporary files a killed process leaves (an upload being imported, a small
file being replaced) are swept when older than a safe age: at start and
periodically by workers, and at start by the web server."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from soundforge.jobs import create_separation_job
from soundforge.jobs.recovery import collect_garbage
from soundforge.storage.atomic import write_text_atomically
from soundforge.web import create_app
from tests.pipeline.conftest import wait_for

HOUR_AGO = time.time() - 3600


def plant(path: Path, *, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left behind")
    if old:
        os.utime(path, (HOUR_AGO, HOUR_AGO))
    return path


def test_old_temporary_files_go_and_everything_else_stays(pipeline, user, make_track) -> None:
    data = pipeline.settings.data_dir
    job = create_separation_job(pipeline, user, make_track(), {"stems": "vocals"})
    folder = pipeline.stems_dir / job.id
    write_text_atomically(folder / ".vocals.wav.peaks.json", "{}")  # a real cache: stays
    os.utime(folder / ".vocals.wav.peaks.json", (HOUR_AGO, HOUR_AGO))
    stale = [
        plant(pipeline.uploads_dir / ".incoming" / "upload-k1ll3d.wav"),  # a 211 MB upload…
        plant(folder / ".vocals.wav.peaks.json.tmp-abc123"),
        plant(data / "lalalai" / "running" / ".host-42.json.tmp-x1"),
        plant(data / ".secret_key.tmp-zz"),
    ]
    fresh = [
        plant(pipeline.uploads_dir / ".incoming" / "upload-now.wav", old=False),
        plant(folder / ".vocals.wav.peaks.json.tmp-now", old=False),
    ]
    removed = collect_garbage(pipeline, min_age=600)
    assert sorted(removed) == sorted(stale)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in fresh)
    assert (folder / ".vocals.wav.peaks.json").exists()
    assert (data / "secret_key").exists()


def test_a_worker_sweeps_at_start(pipeline, start_worker) -> None:
    leftover = plant(pipeline.uploads_dir / ".incoming" / "upload-before-restart.wav")
    start_worker(SOUNDFORGE_GC_MIN_AGE="600")
    wait_for(lambda: not leftover.exists(), "the worker's sweep at start")


def test_the_web_server_sweeps_at_start(pipeline) -> None:
    leftover = plant(pipeline.uploads_dir / ".incoming" / "upload-before-restart.wav")
    with TestClient(create_app(pipeline.settings)) as client:
        assert client.get("/login").status_code == 200
    assert not leftover.exists()


def test_replaced_files_use_the_recognised_temporary_name(tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(source, target):  # the temporary name, as a killed process would leave it
        seen.append(Path(source).name)
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    write_text_atomically(tmp_path / "state.json", "{}")
    assert seen and seen[0].startswith(".state.json.tmp-")
