"""Live progress over SSE, and one separation end to end with a real worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soundforge.config import Settings
from soundforge.db.migrate import upgrade_database
from soundforge.jobs.pipeline import Pipeline
from soundforge.jobs.worker import start_embedded_worker
from soundforge.web import create_app
from tests.support.audio import write_audio
from tests.web.conftest import User
from tests.web.helpers import signup, upload


def read_events(client: TestClient, url: str, **kwargs) -> list[dict]:
    events: list[dict] = []
    kind = None
    with client.stream("GET", url, **kwargs) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind:
                events.append({"event": kind, **json.loads(line.split(":", 1)[1])})
                if kind == "end":
                    break
    return events


def test_job_stream_reports_the_state_and_ends_when_final(alice: User, wav: Path) -> None:
    track = upload(alice.client, alice.csrf, wav)["id"]
    job = alice.client.post(f"/api/tracks/{track}/separations", headers=alice.headers()).json()
    alice.client.post(f"/api/jobs/{job['id']}/cancel", headers=alice.headers())
    for url in (f"/api/jobs/{job['id']}/events", f"/jobs/{job['id']}/events"):
        events = read_events(alice.client, url)
        assert events[0]["event"] == "job"
        assert events[0]["id"] == job["id"] and events[0]["track_id"] == track
        assert events[0]["status"] == "cancelled"
        assert events[-1]["event"] == "end"


def test_events_the_api_and_the_pages_send_one_job_json(alice: User, wav: Path) -> None:
    """The job's state reads the same in the API, the pages' JSON and the live stream."""
    track = upload(alice.client, alice.csrf, wav)["id"]
    started = alice.client.post(f"/api/tracks/{track}/separations",
                                headers=alice.headers()).json()
    from_page = alice.client.post(f"/jobs/{started['id']}/cancel",
                                  headers=alice.headers()).json()
    from_api = alice.client.get(f"/api/jobs/{started['id']}", headers=alice.headers()).json()
    assert from_page == {**from_api, "stems": None}  # the API's single job adds its stems
    assert from_api["stems"] == [] and from_api["status"] == "cancelled"
    assert from_api["created_at"].endswith("+00:00")  # isoformat, as always
    event = read_events(alice.client, f"/api/jobs/{started['id']}/events")[0]
    assert set(event) == {"event", "id", "job_id", "track_id", "status", "progress", "error",
                          "error_code", "version", "updated_at"}
    for name in ("id", "track_id", "status", "progress", "error", "error_code"):
        assert event[name] == from_api[name], name
    assert event["job_id"] == started["id"] and event["version"] >= 1


@pytest.mark.slow
def test_separation_end_to_end_with_a_worker(tmp_path: Path, tiny_repo: Path) -> None:
    """Upload → separate → progress events up to 100 % → stems → download."""
    settings = Settings(data_dir=tmp_path / "data", model_repo=tiny_repo, device="cpu",
                        threads=1)
    upgrade_database(settings)
    with Pipeline(settings) as pipeline:
        worker = start_embedded_worker(pipeline=pipeline, concurrency=1)
        try:
            app = create_app(settings, pipeline=pipeline)
            with TestClient(app, base_url="http://127.0.0.1") as client:
                csrf = signup(client, "e2e@example.com")
                song = write_audio(tmp_path / "Song.wav", seconds=3.0)
                track = upload(client, csrf, song)["id"]
                job = client.post(f"/api/tracks/{track}/separations",
                                  json={"model": "htdemucs"},
                                  headers={"X-CSRF-Token": csrf}).json()
                events = read_events(client, f"/api/jobs/{job['id']}/events")
                updates = [e for e in events if e["event"] == "job"]
                progress = [e["progress"] for e in updates]
                assert progress == sorted(progress)
                assert updates[-1]["status"] == "completed" and progress[-1] == 100
                stems = client.get(f"/api/jobs/{job['id']}/stems").json()["stems"]
                assert sorted(s["stem"] for s in stems) == ["bass", "drums", "other", "vocals"]
                audio = client.get(stems[0]["file_url"])
                assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
                page = client.get(f"/tracks/{track}").text
                # Four stems and the original mix to compare them with.
                assert page.count("data-stem ") == 5 and "data-player" in page
                assert page.count("data-original ") == 1
        finally:
            worker.stop()
