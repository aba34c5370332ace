"""The fake LALAL.AI server behaves like the spec says the provider does.

Other suites (the job pipeline, the web app) rely on it, so its own behaviour
is pinned here with plain HTTP requests, independent of our client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_lalalai import MISSING_KEY_DETAIL, FakeLalalai

ENDPOINTS = [
    "upload/", "check/", "cancel/", "cancel/all/", "delete/", "limits/minutes_left/",
    "split/stem_separator/", "split/multistem/",
]


@pytest.fixture
def http(fake: FakeLalalai) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url) as client:
        yield client


def auth(fake: FakeLalalai) -> dict[str, str]:
    return {"X-License-Key": fake.key}


def upload(http: httpx.Client, fake: FakeLalalai, song: Path) -> dict:
    headers = {**auth(fake), "Content-Disposition": 'attachment; filename="s.wav"'}
    response = http.post("upload/", content=song.read_bytes(), headers=headers)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_wants_the_key(http: httpx.Client, endpoint: str) -> None:
    response = http.post(endpoint, json={})
    assert response.status_code == 403
    assert response.json() == {"detail": MISSING_KEY_DETAIL}


def test_unknown_key_is_403(http: httpx.Client) -> None:
    response = http.post("limits/minutes_left/", headers={"X-License-Key": "nope"})
    assert response.status_code == 403


def test_malformed_bodies_get_pydantic_style_422(http: httpx.Client, fake: FakeLalalai) -> None:
    response = http.post("split/multistem/", headers=auth(fake),
                         json={"source_id": "not-a-uuid", "presets": {"stem_list": []}, "x": 1})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    locations = {tuple(item["loc"]) for item in detail}
    assert {("body", "source_id"), ("body", "presets", "stem_list"), ("body", "x")} <= locations
    assert all({"loc", "msg", "type"} <= set(item) for item in detail)
    response = http.post("upload/", headers=auth(fake), content=b"abc")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "content-disposition"]


def test_upload_answers_the_spec_fields(http: httpx.Client, fake: FakeLalalai, song: Path) -> None:
    body = upload(http, fake, song)
    assert set(body) == {"id", "name", "size", "duration", "expires"}
    assert (body["name"], body["duration"], body["size"]) == ("s.wav", 3, song.stat().st_size)


def test_task_lifecycle_progress_then_tracks(
    http: httpx.Client, fake: FakeLalalai, song: Path
) -> None:
    source = upload(http, fake, song)
    started = http.post("split/stem_separator/", headers=auth(fake),
                        json={"source_id": source["id"], "presets": {"stem": "vocals"}})
    task_id = started.json()["task_id"]
    unknown = str(uuid.uuid4())
    states = []
    for _ in range(fake.polls_to_finish):
        result = http.post("check/", headers=auth(fake),
                           json={"task_ids": [task_id, unknown]}).json()["result"]
        states.append(result[task_id]["status"])
        assert result[unknown] == {"status": "server_error",
                                   "error": "Failed to extract information about task"}
    assert states == ["progress", "progress", "success"]
    tracks = result[task_id]["result"]["tracks"]
    assert [(t["type"], t["label"]) for t in tracks] == [("stem", "vocals"),
                                                         ("back", "no_vocals")]
    download = httpx.get(tracks[0]["url"])  # no key needed for the links
    assert download.status_code == 200 and download.content[:4] == b"RIFF"
    # Cancelling a finished task is refused per task, inside a 200.
    cancel = http.post("cancel/", headers=auth(fake), json={"task_ids": [task_id]})
    assert cancel.json() == {"result": {task_id: {"status": "server_error",
                                                  "error": "Task is not in progress state"}}}
    # After delete the links lead to 404.
    assert http.post("delete/", headers=auth(fake), json={"source_id": source["id"]}).json() == {}
    assert httpx.get(tracks[0]["url"]).status_code == 404


def test_check_is_limited_to_30_a_minute_per_key(http: httpx.Client, fake: FakeLalalai) -> None:
    for _ in range(30):
        assert http.post("check/", headers=auth(fake), json={"task_ids": []}).status_code == 200
    throttled = http.post("check/", headers=auth(fake), json={"task_ids": []})
    assert throttled.status_code == 429
    other = fake.add_key()
    assert http.post("check/", headers={"X-License-Key": other},
                     json={"task_ids": []}).status_code == 200
    assert fake.throttled == 1


def test_minutes_are_charged_at_start_and_refused_when_short(
    http: httpx.Client, fake: FakeLalalai, song: Path
) -> None:
    source = upload(http, fake, song)
    fake.set_minutes(0.2)
    body = {"source_id": source["id"], "presets": {"stem_list": ["vocals", "drum"]}}
    assert http.post("split/multistem/", headers=auth(fake), json=body).status_code == 200
    assert http.post("limits/minutes_left/", headers=auth(fake)).json() == {"minutes_left": 0.1}
    refused = http.post("split/multistem/", headers=auth(fake),
                        json={**body, "presets": {"stem_list": ["vocals", "drum", "bass"]}})
    assert refused.status_code == 400
    assert refused.json()["code"] == "exceeded_duration"


def test_idempotency_key_returns_the_same_task_until_it_starts(
    http: httpx.Client, fake: FakeLalalai, song: Path
) -> None:
    source = upload(http, fake, song)
    body = {"source_id": source["id"], "presets": {"stem": "bass"},
            "idempotency_key": str(uuid.uuid4())}
    first = http.post("split/stem_separator/", headers=auth(fake), json=body).json()
    again = http.post("split/stem_separator/", headers=auth(fake), json=body).json()
    assert first == again
    http.post("check/", headers=auth(fake), json={"task_ids": [first["task_id"]]})
    used = http.post("split/stem_separator/", headers=auth(fake), json=body)
    assert used.status_code == 400
    assert used.json() == {"detail": "Idempotency key has already been used.",
                           "code": "idempotency_key_used"}


def test_reset_gives_a_clean_server(fake: FakeLalalai) -> None:
    old_key = fake.key
    fake.fail_next("check", 3)
    fake.hold()
    fake.reset(minutes=5)
    assert fake.key != old_key and fake.minutes_left() == 5
    assert not fake.holding and not fake.calls and not fake.tasks
