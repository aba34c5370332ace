"""Every route refuses strangers: unauthenticated requests, and another user's ids.

Another user's track, job, stem or token answers exactly like one that does not
exist (404), in pages, files and the API alike, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from soundforge.db import ApiToken, ProcessingJob, Stem, Track
from soundforge.db.accounts import create_api_token
from tests.web.conftest import User
from tests.web.helpers import completed_job, upload


@dataclass
class Owned:
    track: str
    job: str
    stem: int
    token: int


@pytest.fixture
def owned(alice: User, pipeline, wav: Path) -> Owned:
    track = upload(alice.client, alice.csrf, wav)["id"]
    job = completed_job(pipeline, track)
    with pipeline.db.transaction() as session:
        stem = session.scalar(select(Stem.id).where(Stem.job_id == job))
        user = session.get(Track, track).user
        token, _ = create_api_token(session, user, "alice's")
        token_id = token.id
    return Owned(track, job, stem, token_id)


PAGES = [
    "/", "/settings", "/tracks/{track}", "/tracks/{track}/separate", "/tracks/{track}/artwork",
    "/tracks/{track}/jobs/{job}", "/events", "/jobs/{job}/events",
    "/files/stems/{job}/vocals.wav", "/export/stem/{stem}", "/export/stems/{track}",
    "/export/jobs/{job}", "/files/tracks/{track}/audio",
]
FORMS = [
    "/tracks/upload", "/tracks/{track}/delete", "/tracks/{track}/separate",
    "/jobs/{job}/cancel", "/settings/demucs", "/settings/cloud", "/settings/tokens",
    "/settings/tokens/{token}/delete", "/jobs/{job}/delete", "/tracks/separate-batch",
]
API = [
    ("GET", "/api/me"), ("GET", "/api/models"), ("GET", "/api/tracks"),
    ("POST", "/api/tracks"), ("GET", "/api/tracks/{track}"), ("DELETE", "/api/tracks/{track}"),
    ("POST", "/api/tracks/{track}/separations"), ("GET", "/api/tracks/{track}/jobs"),
    ("GET", "/api/tracks/{track}/stems"), ("GET", "/api/jobs"), ("GET", "/api/jobs/{job}"),
    ("GET", "/api/jobs/{job}/events"), ("POST", "/api/jobs/{job}/cancel"),
    ("GET", "/api/jobs/{job}/stems"), ("GET", "/api/settings"), ("PATCH", "/api/settings"),
    ("GET", "/api/lalalai/quota"), ("POST", "/api/lalalai/test-key"),
    ("POST", "/api/lalalai/cancel"), ("POST", "/api/lalalai/cancel-all"),
    ("GET", "/api/tracks/{track}/peaks"), ("DELETE", "/api/jobs/{job}"),
    ("POST", "/api/lalalai/estimate"),
]
# Routes about one of Alice's things (the others are about "my own" data).
OWNED_API = [(m, p) for m, p in API if "{" in p]


def fill(path: str, owned: Owned) -> str:
    return path.format(track=owned.track, job=owned.job, stem=owned.stem, token=owned.token)


def counts(pipeline) -> tuple[int, int, int, int]:
    with pipeline.db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(t))  # type: ignore[return-value]
                     for t in (Track, ProcessingJob, Stem, ApiToken))


def test_unauthenticated_pages_redirect_to_login(anon: TestClient, owned: Owned) -> None:
    for path in PAGES:
        response = anon.get(fill(path, owned), headers={"Accept": "text/html"},
                            follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path


def test_unauthenticated_forms_change_nothing(anon: TestClient, owned: Owned, pipeline) -> None:
    before = counts(pipeline)
    for path in FORMS:
        response = anon.post(fill(path, owned), data={"csrf_token": "x", "engine": "local"},
                             follow_redirects=False)
        # Refused by CSRF (no session) or by the sign-in check: never done.
        assert response.status_code in (303, 401, 403), path
        if response.status_code == 303:
            assert response.headers["location"].startswith("/login"), path
    assert counts(pipeline) == before


def test_unauthenticated_api_answers_401_json(anon: TestClient, owned: Owned, pipeline) -> None:
    before = counts(pipeline)
    for method, path in API:
        response = anon.request(method, fill(path, owned))
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert counts(pipeline) == before


def test_another_users_ids_are_not_found_in_pages_and_files(bob: User, owned: Owned,
                                                             pipeline) -> None:
    for path in PAGES:
        if "{" not in path:
            continue
        response = bob.client.get(fill(path, owned), headers={"Accept": "text/html"})
        assert response.status_code == 404, path
        assert "does not exist or is not yours" in response.text
    before = counts(pipeline)
    for path in FORMS:
        if "{" not in path:
            continue
        response = bob.client.post(fill(path, owned), data={"csrf_token": bob.csrf,
                                                            "engine": "local"})
        assert response.status_code == 404, path
    assert counts(pipeline) == before


def test_another_users_ids_are_not_found_in_the_api(bob: User, owned: Owned, pipeline) -> None:
    before = counts(pipeline)
    for method, path in OWNED_API:
        response = bob.client.request(method, fill(path, owned), headers=bob.headers())
        assert response.status_code == 404, (method, path)
        error = response.json()["error"]
        assert error["code"] == "not_found", (method, path)
        # One lookup per kind of item, one wording, in the API as in the pages.
        assert error["message"].endswith("does not exist or is not yours."), (method, path)
    response = bob.client.post("/api/lalalai/cancel", json={"job_id": owned.job},
                               headers=bob.headers())
    assert response.status_code == 404
    assert counts(pipeline) == before
    # Bob's own lists show nothing of Alice's.
    assert bob.client.get("/api/tracks").json() == {"tracks": []}
    assert bob.client.get("/api/jobs").json() == {"jobs": []}
    assert owned.track not in bob.client.get("/").text


def test_the_owner_reaches_everything(alice: User, owned: Owned) -> None:
    for path in PAGES:
        if path.endswith("events"):
            continue  # streams: tested in test_events
        response = alice.client.get(fill(path, owned))
        assert response.status_code == 200, path
    for method, path in OWNED_API:
        if method == "GET" and not path.endswith("events"):
            assert alice.client.get(fill(path, owned)).status_code == 200, path


def test_malformed_ids_are_plain_404s(alice: User) -> None:
    for path in ("/tracks/" + "x" * 500, "/api/jobs/%00", "/export/stem/not-a-number",
                 "/api/tracks/' OR 1=1 --"):
        response = alice.client.get(path)
        assert response.status_code in (404, 422), path
        assert "Traceback" not in response.text
