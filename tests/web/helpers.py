"""Helpers for the web tests: sign up through the real forms, read CSRF tokens,
make jobs with stems on disk."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from soundforge.db import ProcessingJob, Stem, Track
from soundforge.db.base import new_uuid, utcnow
from soundforge.jobs.pipeline import Pipeline
from tests.support.audio import write_audio

PASSWORD = "correct horse battery"
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_of(client: TestClient, path: str = "/login") -> str:
    response = client.get(path)
    match = _META.search(response.text)
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


def signup(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign up through the form; returns the session's CSRF token."""
    token = csrf_of(client, "/signup")
    response = client.post(
        "/signup",
        data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client, "/")


def upload(client: TestClient, csrf: str, path: Path, *, api: bool = True) -> dict:
    with open(path, "rb") as handle:
        response = client.post(
            "/tracks/upload",
            files={"files": (path.name, handle, "audio/wav")},
            headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
        )
    assert response.status_code == 201, response.text
    return response.json()["tracks"][0]


def completed_job(pipeline: Pipeline, track_id: str, stems: tuple[str, ...] = ("vocals", "drums"),
                  seconds: float = 1.0, provider_task_ids: tuple[str, ...] = ()) -> str:
    """A finished separation of ``track_id`` with real WAV stems on disk, as the
    worker leaves it (files under uploads/stems/{job_id}/, one Stem row each)."""
    job_id = new_uuid()
    engine = "lalalai" if provider_task_ids else "local"
    folder = pipeline.uploads_dir / "stems" / job_id
    folder.mkdir(parents=True)
    with pipeline.db.transaction() as session:
        track = session.get(Track, track_id)
        assert track is not None
        job = ProcessingJob(
            id=job_id, user_id=track.user_id, track_id=track_id, engine=engine,
            model="auto" if provider_task_ids else "htdemucs",
            options={"model": "htdemucs", "format": "wav", "stems": list(stems)},
            options_key=new_uuid().replace("-", ""), content_hash=track.content_hash,
            status="completed", progress=100, provider_task_ids=list(provider_task_ids),
            finished_at=utcnow(),
        )
        session.add(job)
        for index, name in enumerate(stems):
            path = write_audio(folder / f"{name}.wav", seconds=seconds, seed=index)
            session.add(Stem(job_id=job_id, track_id=track_id, stem_type=name,
                             file_path=f"stems/{job_id}/{name}.wav", format="wav",
                             size_bytes=path.stat().st_size, duration=seconds))
    return job_id
