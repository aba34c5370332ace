"""Bad input on every route: odd ids, non-finite and out-of-range numbers, bogus
filters. Each is refused with 404 or 422 and a documented code, and nothing is
written.

The many one-request cases share one app, user and track per module
(``shared_site``): each still checks that its own request wrote no job.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from soundforge.db import ProcessingJob
from soundforge.engines.base import NUMERIC_RULES, numeric_fields
from tests.web.conftest import SharedSite, User
from tests.web.helpers import upload

# Ids that cannot name a row: beyond 64 bits, negative, zero, NUL, huge, SQL.
BAD_IDS = [
    "18446744073709551616", "99999999999999999999999999", "-1", "0", "%00", "1e400",
    "x" * 500, "'%20OR%201=1%20--", "00000000-0000-0000-0000-00000000000%00",
]


def job_count(pipeline) -> int:
    with pipeline.db.session() as session:
        return session.scalar(select(func.count()).select_from(ProcessingJob))


@pytest.fixture
def track(alice: User, wav: Path) -> str:
    return upload(alice.client, alice.csrf, wav)["id"]


def all_routes(routes: list) -> list[APIRoute]:
    """The app's API routes, also those of included routers (FastAPI ≥ 0.165 keeps
    them under the included router instead of copying them into the app)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(all_routes(route.original_router.routes))
    return found


def id_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) of the app that takes an id in its path."""
    found = []
    for route in all_routes(app.routes):
        if "{" not in route.path:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, route.path))
    return found


def test_every_route_with_an_id_answers_404_or_422_for_any_bad_id(
    app, alice: User, pipeline
) -> None:
    routes = id_routes(app)
    assert len(routes) >= 15, routes  # the walk really covers the app
    before = job_count(pipeline)
    for method, path in routes:
        for bad in BAD_IDS:
            url = re.sub(r"\{[^}:]+(:path)?\}", bad, path)
            response = alice.client.request(method, url, headers=alice.headers())
            assert response.status_code in (404, 422), (method, url, response.status_code)
            code = response.json()["error"]["code"]
            assert code in ("not_found", "invalid_request"), (method, url, code)
    assert job_count(pipeline) == before


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e400", '"inf"', '"nan"'])
@pytest.mark.parametrize("name", sorted(numeric_fields()))
def test_non_finite_numbers_are_refused_before_anything_is_written(
    shared_site: SharedSite, name: str, value: str
) -> None:
    alice, track, pipeline = shared_site.alice, shared_site.track, shared_site.pipeline
    # Raw JSON: Python's parser (and so the server's) accepts Infinity and NaN.
    response = alice.client.post(
        f"/api/tracks/{track}/separations",
        content=f'{{"engine": "local", "{name}": {value}}}',
        headers={**alice.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("invalid_option", "invalid_request")
    assert name in response.json()["error"]["message"]
    assert job_count(pipeline) == 0


OUT_OF_RANGE = {
    "segment": [1e9, 0, -1, 7.9],  # 7.9 > htdemucs's 7.8 s
    "shifts": [21, -1, 10**12],
    "overlap": [1, -0.1, 5],
    "mp3_bitrate": [-5, 0, 100, 100000],
    "sample_rate": [1, 7999, 192001, 10**12],
    "seed": [-1, 2**32, 2**70],
    "batch": [0, -1, 257, 10**12],
}


def test_every_numeric_option_has_a_range() -> None:
    # A numeric option added later must come with its rule (and a row above).
    assert set(numeric_fields()) == set(NUMERIC_RULES) == set(OUT_OF_RANGE)


@pytest.mark.parametrize(("name", "value"),
                         [(n, v) for n, values in OUT_OF_RANGE.items() for v in values])
def test_out_of_range_numbers_are_refused_with_the_allowed_range(
    shared_site: SharedSite, name: str, value: float
) -> None:
    alice, track, pipeline = shared_site.alice, shared_site.track, shared_site.pipeline
    body = {"engine": "local", "model": "htdemucs", "format": "mp3", name: value}
    response = alice.client.post(f"/api/tracks/{track}/separations", json=body,
                                 headers=alice.headers())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] in ("invalid_option", "invalid_request")
    assert name in error["message"]
    assert job_count(pipeline) == 0


def test_good_numbers_still_make_a_job(alice: User, track: str, pipeline) -> None:
    body = {"engine": "local", "model": "htdemucs", "format": "mp3", "mp3_bitrate": 192,
            "segment": 7.8, "shifts": 2, "overlap": 0.5, "sample_rate": 48000, "seed": 2**32 - 1}
    response = alice.client.post(f"/api/tracks/{track}/separations", json=body,
                                 headers=alice.headers())
    assert response.status_code == 202, response.text
    options = response.json()["options"]
    assert options["mp3_bitrate"] == 192 and math.isclose(options["segment"], 7.8)


@pytest.mark.parametrize("status", ["bogus", "queued,bogus", "QUEUED", "running;"])
def test_an_unknown_job_status_filter_is_refused(shared_site: SharedSite, status: str) -> None:
    response = shared_site.alice.client.get("/api/jobs", params={"status": status})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_option"
    assert "queued" in error["message"] and "completed" in error["message"]


def test_known_job_status_filters_work(alice: User, track: str) -> None:
    alice.client.post(f"/api/tracks/{track}/separations", json={"engine": "local"},
                      headers=alice.headers())
    assert len(alice.client.get("/api/jobs?status=queued,running").json()["jobs"]) == 1
    assert alice.client.get("/api/jobs?status=completed").json()["jobs"] == []


@pytest.mark.parametrize(("filename", "title"), [
    ("x</script><script>alert(1)</script>.wav", "x</script><script>alert(1)</script>"),
    ("AC/DC - Back in Black.wav", "AC/DC - Back in Black"),
    # The multipart parser itself drops a Windows client's folder (old browsers sent it).
    ("C:\\Users\\me\\My Song.wav", "My Song"),
    ("../../etc/passwd.wav", "../../etc/passwd"),
    ("no extension", "no extension"),
])
def test_upload_names_with_slashes_keep_a_readable_title(
    alice: User, wav: Path, pipeline, filename: str, title: str
) -> None:
    with open(wav, "rb") as handle:
        response = alice.client.post(
            "/api/tracks", files={"files": (filename, handle, "audio/wav")},
            headers=alice.headers(),
        )
    assert response.status_code == 201, response.text
    track = response.json()["tracks"][0]
    assert track["title"] == title
    assert track["original_filename"].startswith(title)
    # Stored where it always is, whatever the name said.
    folder = pipeline.uploads_dir / "tracks" / track["id"]
    assert [p.name for p in folder.iterdir() if p.name.startswith("original")] == [
        "original.wav"
    ]
    page = alice.client.get("/").text
    assert "<script>alert(1)</script>" not in page  # escaped wherever it is shown


def test_control_characters_leave_the_name(pipeline, wav: Path) -> None:
    from soundforge.db.accounts import create_user
    from soundforge.library.tracks import import_track

    with pipeline.db.transaction() as session:
        user = create_user(session, "carol@example.com", "correct horse battery")
        user_id = user.id
    track = import_track(pipeline, user_id, wav, filename="tab\there\x00\u202enull/x.wav")
    assert track.title == "tab here null/x"


def test_error_messages_never_show_server_paths(
    alice: User, track: str, pipeline, settings
) -> None:
    """Errors that name a stored file say where it is inside the data folder."""
    from soundforge.jobs import state
    from soundforge.jobs.recovery import make_worker_id

    stored = next((pipeline.uploads_dir / "tracks" / track).glob("original.*"))
    # A job that fails in a worker (the engines name files by their full path,
    # which suits the CLI): its row is what clients read.
    with pipeline.db.transaction() as session:
        from soundforge.db.models import ProcessingJob
        from soundforge.db.models import Track as TrackRow
        row = session.get(TrackRow, track)
        job = ProcessingJob(user_id=row.user_id, track_id=track, engine="local",
                            model="htdemucs", options={}, options_key="k" * 64,
                            content_hash=row.content_hash)
        session.add(job)
        session.flush()
        job_id = job.id
    worker = make_worker_id()
    assert state.claim(pipeline, job_id, worker) is not None
    state.fail(pipeline, job_id, worker, f"Cannot read {stored}: it is damaged.", "invalid_input")
    shown = alice.client.get(f"/api/jobs/{job_id}").json()["error"]
    assert shown == f"Cannot read uploads/tracks/{track}/{stored.name}: it is damaged."
    assert str(settings.data_dir.absolute()) not in alice.client.get("/").text
