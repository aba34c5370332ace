"""Separate Stems: the form pre-filled from settings, validation in the form and
the API, LALAL.AI without key or minutes, double clicks, cancel."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from soundforge.db import ProcessingJob
from tests.support.fake_lalalai import FakeLalalai
from tests.web.conftest import SharedSite, User
from tests.web.helpers import upload


@pytest.fixture
def track(alice: User, wav: Path) -> str:
    return upload(alice.client, alice.csrf, wav)["id"]


def job_count(pipeline) -> int:
    with pipeline.db.session() as session:
        return session.scalar(select(func.count()).select_from(ProcessingJob))


def test_form_is_prefilled_from_settings(alice: User, track: str) -> None:
    alice.client.patch("/api/settings", json={"demucs_model": "htdemucs_6s",
                                              "output_format": "flac"}, headers=alice.headers())
    page = alice.client.get(f"/tracks/{track}/separate").text
    assert re.search(r'<option value="htdemucs_6s" [^>]*selected>', page)
    assert '<option value="flac" selected>' in page
    assert 'name="engine" value="local" checked' in page
    for stem in ("guitar", "piano"):  # the six-stem model's extras are offered
        assert f'value="{stem}" checked' in page
    # The seed's model comparison, from the engines' catalog.
    for cell in ("htdemucs_ft", "mdx_extra", "High (vocals)", "lalal.ai", "Paid API"):
        assert cell in page


def test_form_creates_a_queued_job_and_shows_it_on_the_card(alice: User, track: str,
                                                            pipeline) -> None:
    response = alice.client.post(
        f"/tracks/{track}/separate",
        data={"csrf_token": alice.csrf, "engine": "local", "model": "htdemucs",
              "format": "mp3", "stems": ["vocals", "drums"], "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    jobs = alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["status"] == "queued" and job["engine"] == "local" and job["model"] == "htdemucs"
    assert job["options"]["format"] == "mp3"
    assert sorted(job["options"]["stems"]) == ["drums", "vocals"]
    card = alice.client.get("/").text
    assert f'data-job-id="{job["id"]}"' in card and 'data-status="queued"' in card
    assert f'action="/jobs/{job["id"]}/cancel"' in card


@pytest.mark.parametrize(("field", "value", "words"), [
    ("model", "htdemucs_xl", "Unknown model 'htdemucs_xl'"),
    ("stems", "guitar", "has no stem 'guitar'"),
    ("stems", "kazoo", "has no stem 'kazoo'"),
    ("format", "ogg", "Unknown output format"),
    ("engine", "magic", "Unknown engine"),
])
def test_unknown_model_or_stem_in_the_form(shared_site: SharedSite, field: str,
                                           value: str, words: str) -> None:
    # One request that writes nothing: one app, user and track for all the cases.
    alice, track, pipeline = shared_site.alice, shared_site.track, shared_site.pipeline
    data = {"csrf_token": alice.csrf, "engine": "local", "model": "htdemucs", "format": "wav",
            field: value}
    response = alice.client.post(f"/tracks/{track}/separate", data=data)
    assert response.status_code == 422
    assert words in response.text.replace("&#39;", "'")
    assert "<form" in response.text  # the form again, to fix the choice
    assert job_count(pipeline) == 0


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"model": "htdemucs_xl"}, "invalid_option", "Unknown model"),
    ({"stems": ["vocals", "kazoo"]}, "invalid_option", "kazoo"),
    ({"model": "htdemucs", "stems": ["piano"]}, "invalid_option", "htdemucs_6s"),
    ({"engine": "magic"}, "invalid_option", "Unknown engine"),
    ({"colour": "blue"}, "invalid_request", "colour"),
    ({"stems": "vocals"}, "invalid_request", "stems"),
])
def test_unknown_model_or_stem_in_the_api(shared_site: SharedSite, body: dict,
                                          code: str, words: str) -> None:
    alice, track, pipeline = shared_site.alice, shared_site.track, shared_site.pipeline
    response = alice.client.post(f"/api/tracks/{track}/separations", json=body,
                                 headers=alice.headers())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert words in response.json()["error"]["message"]
    assert job_count(pipeline) == 0


def test_api_uses_settings_for_what_is_left_out(alice: User, track: str) -> None:
    alice.client.patch("/api/settings", json={"demucs_model": "htdemucs_ft",
                                              "output_format": "flac"}, headers=alice.headers())
    response = alice.client.post(f"/api/tracks/{track}/separations", headers=alice.headers())
    assert response.status_code == 202
    job = response.json()
    assert job["model"] == "htdemucs_ft" and job["options"]["format"] == "flac"
    status = alice.client.get(job["url"]).json()
    assert status["status"] == "queued" and status["progress"] == 0


def test_double_click_makes_one_job(alice: User, track: str, pipeline) -> None:
    data = {"csrf_token": alice.csrf, "engine": "local", "model": "htdemucs", "format": "wav",
            "next": "/"}
    first = alice.client.post(f"/tracks/{track}/separate", data=data, follow_redirects=False)
    second = alice.client.post(f"/tracks/{track}/separate", data=data, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert job_count(pipeline) == 1
    # At the same instant, from several threads (two web workers racing).
    headers = alice.headers()
    body = {"model": "htdemucs", "stems": ["vocals"]}
    answers: list[str] = []

    def click() -> None:
        answers.append(alice.client.post(f"/api/tracks/{track}/separations", json=body,
                                         headers=headers).json()["id"])

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 1
    assert job_count(pipeline) == 2


def test_cancel_a_queued_job_from_the_card_and_the_api(alice: User, track: str) -> None:
    job = alice.client.post(f"/api/tracks/{track}/separations", headers=alice.headers()).json()
    response = alice.client.post(f"/jobs/{job['id']}/cancel", headers=alice.headers())
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = alice.client.post(f"/api/tracks/{track}/separations", json={"force": True},
                              headers=alice.headers()).json()
    assert again["id"] != job["id"]
    api = alice.client.post(f"/api/jobs/{again['id']}/cancel", headers=alice.headers())
    assert api.json()["status"] == "cancelled"
    # The plain form (no script) goes back to the track page.
    third = alice.client.post(f"/api/tracks/{track}/separations", json={"format": "flac"},
                              headers=alice.headers()).json()
    form = alice.client.post(f"/jobs/{third['id']}/cancel", data={"csrf_token": alice.csrf},
                             follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == f"/tracks/{track}"


def test_lalalai_without_a_key(alice: User, track: str, pipeline) -> None:
    response = alice.client.post(f"/api/tracks/{track}/separations",
                                 json={"engine": "lalalai", "stems": ["vocals"]},
                                 headers=alice.headers())
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "auth_error" and "Settings" in error["message"]
    page = alice.client.post(f"/tracks/{track}/separate",
                             data={"csrf_token": alice.csrf, "engine": "lalalai",
                                   "stems": "vocals", "format": "wav"})
    assert page.status_code == 422 and "license key" in page.text
    assert job_count(pipeline) == 0


def test_lalalai_without_minutes(alice: User, track: str, pipeline,
                                 fake_lalalai: FakeLalalai) -> None:
    alice.client.patch("/api/settings", json={"lalalai_api_key": fake_lalalai.key},
                       headers=alice.headers())
    fake_lalalai.set_minutes(0.0)
    response = alice.client.post(f"/api/tracks/{track}/separations",
                                 json={"engine": "lalalai", "stems": ["vocals", "drums"],
                                       "preview": False},
                                 headers=alice.headers())
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert job_count(pipeline) == 0
    # With minutes, the same request is accepted and queued.
    fake_lalalai.set_minutes(100.0)
    ok = alice.client.post(f"/api/tracks/{track}/separations",
                           json={"engine": "lalalai", "stems": ["vocals"]},
                           headers=alice.headers())
    assert ok.status_code == 202 and ok.json()["engine"] == "lalalai"
    assert ok.json()["options"]["preview"] is True  # the settings' default


def test_a_failed_job_shows_its_error_on_the_card(alice: User, track: str, pipeline) -> None:
    job = alice.client.post(f"/api/tracks/{track}/separations", headers=alice.headers()).json()
    with pipeline.db.transaction() as session:
        row = session.get(ProcessingJob, job["id"])
        row.status, row.progress = "failed", 30
        row.error_message, row.error_code = "CUDA out of memory: try the CPU.", "engine_error"
    card = alice.client.get("/").text
    assert 'data-status="failed"' in card and "CUDA out of memory: try the CPU." in card
    page = alice.client.get(f"/tracks/{track}").text
    assert "CUDA out of memory: try the CPU." in page
    assert alice.client.get(job["url"]).json()["error"] == "CUDA out of memory: try the CPU."
