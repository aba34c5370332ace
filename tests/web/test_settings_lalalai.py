"""Settings (Demucs, Cloud Separation) and the seed's LALAL.AI routes."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from soundforge.db import UserSettings
from tests.support.fake_lalalai import FakeLalalai
from tests.web.conftest import User
from tests.web.helpers import upload


def test_demucs_section_saves_and_validates(alice: User) -> None:
    response = alice.client.post("/settings/demucs", data={
        "csrf_token": alice.csrf, "demucs_model": "mdx_extra", "device": "cpu",
        "output_format": "flac"}, follow_redirects=False)
    assert response.status_code == 303
    page = alice.client.get("/settings").text
    assert "Demucs settings saved." in page
    assert '<option value="mdx_extra" selected>' in page
    assert '<option value="cpu" selected>' in page
    assert alice.client.get("/api/settings").json() == {
        "engine": "local", "demucs_model": "mdx_extra", "device": "cpu",
        "output_format": "flac", "lalalai_preview": True, "lalalai_key_set": False,
        "lalalai_key_masked": None, "filename_template": None,
    }
    bad = alice.client.post("/settings/demucs", data={
        "csrf_token": alice.csrf, "demucs_model": "htdemucs_xl", "device": "cpu",
        "output_format": "wav"})
    assert bad.status_code == 422 and "Unknown model" in bad.text
    bad_device = alice.client.post("/settings/demucs", data={
        "csrf_token": alice.csrf, "demucs_model": "htdemucs", "device": "tpu",
        "output_format": "wav"})
    assert bad_device.status_code == 422 and "Unknown device" in bad_device.text
    assert alice.client.get("/api/settings").json()["demucs_model"] == "mdx_extra"


def test_cloud_section_key_is_encrypted_and_masked(
    alice: User, pipeline, fake_lalalai: FakeLalalai
) -> None:
    key = "lalal-secret-key-9876"
    fake_lalalai.set_minutes(12.0, key=key)  # a key LALAL.AI accepts
    response = alice.client.post("/settings/cloud", data={
        "csrf_token": alice.csrf, "engine": "lalalai", "lalalai_api_key": key,
        "lalalai_preview": "1"}, follow_redirects=False)
    assert response.status_code == 303
    page = alice.client.get("/settings").text
    assert key not in page and "••••••••9876" in page
    api = alice.client.get("/api/settings").json()
    assert api["engine"] == "lalalai" and api["lalalai_key_masked"] == "••••••••9876"
    assert key not in str(api)
    with pipeline.db.session() as session:
        row = session.scalar(select(UserSettings))
        assert row.lalalai_key_encrypted and key not in row.lalalai_key_encrypted
    # A blank field keeps the key; the remove box forgets it.
    alice.client.post("/settings/cloud", data={"csrf_token": alice.csrf, "engine": "local",
                                               "lalalai_api_key": ""})
    assert alice.client.get("/api/settings").json()["lalalai_key_set"] is True
    alice.client.post("/settings/cloud", data={"csrf_token": alice.csrf, "engine": "local",
                                               "remove_key": "1"})
    after = alice.client.get("/api/settings").json()
    assert after["lalalai_key_set"] is False and after["lalalai_preview"] is False
    bad = alice.client.post("/settings/cloud", data={"csrf_token": alice.csrf,
                                                     "engine": "quantum"})
    assert bad.status_code == 422 and "Unknown engine" in bad.text


def test_settings_api_validates(alice: User) -> None:
    for body, code in (({"engine": "quantum"}, "invalid_option"),
                       ({"demucs_model": "nope"}, "invalid_option"),
                       ({"output_format": "ogg"}, "invalid_option"),
                       ({"shoe_size": 44}, "invalid_request")):
        response = alice.client.patch("/api/settings", json=body, headers=alice.headers())
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == code
    ok = alice.client.patch("/api/settings", json={"device": "auto", "engine": "lalalai"},
                            headers=alice.headers())
    assert ok.status_code == 200 and ok.json()["engine"] == "lalalai"


def test_quota_and_test_key(alice: User, fake_lalalai: FakeLalalai) -> None:
    none = alice.client.get("/api/lalalai/quota")
    assert none.status_code == 422 and none.json()["error"]["code"] == "auth_error"
    wrong = alice.client.post("/api/lalalai/test-key", json={"key": "not-a-valid-key"},
                              headers=alice.headers())
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "auth_error"
    fake_lalalai.set_minutes(75.0)
    tested = alice.client.post("/api/lalalai/test-key", json={"key": fake_lalalai.key},
                               headers=alice.headers())
    assert tested.status_code == 200 and tested.json()["remaining_minutes"] == 75.0
    alice.client.patch("/api/settings", json={"lalalai_api_key": fake_lalalai.key},
                       headers=alice.headers())
    quota = alice.client.get("/api/lalalai/quota").json()
    assert set(quota) == {"quota_minutes", "used_minutes", "remaining_minutes"}
    assert quota["remaining_minutes"] == 75.0
    assert quota["quota_minutes"] == quota["used_minutes"] + quota["remaining_minutes"]
    saved = alice.client.post("/api/lalalai/test-key", headers=alice.headers())
    assert saved.status_code == 200


def test_cancel_and_cancel_all(alice: User, bob: User, fake_lalalai: FakeLalalai,
                               wav: Path, tmp_path: Path) -> None:
    alice.client.patch("/api/settings", json={"lalalai_api_key": fake_lalalai.key},
                       headers=alice.headers())
    track = upload(alice.client, alice.csrf, wav)["id"]
    headers = alice.headers()
    nothing = alice.client.post("/api/lalalai/cancel", headers=headers)
    assert nothing.status_code == 404
    local = alice.client.post(f"/api/tracks/{track}/separations", headers=headers).json()
    refused = alice.client.post("/api/lalalai/cancel", json={"job_id": local["id"]},
                                headers=headers)
    assert refused.status_code == 422
    jobs = [alice.client.post(f"/api/tracks/{track}/separations",
                              json={"engine": "lalalai", "stems": [stem]},
                              headers=headers).json()["id"] for stem in ("vocals", "drums", "bass")]
    one = alice.client.post("/api/lalalai/cancel", json={"job_id": jobs[0]}, headers=headers)
    assert one.status_code == 200 and one.json()["job_ids"] == [jobs[0]]
    assert alice.client.get(f"/api/jobs/{jobs[0]}").json()["status"] == "cancelled"
    latest = alice.client.post("/api/lalalai/cancel", headers=headers)
    assert latest.json()["job_ids"] == [jobs[2]]
    # Bob's cancel-all touches nothing of Alice's.
    assert bob.client.post("/api/lalalai/cancel-all", headers=bob.headers()).json()[
        "cancelled"] == 0
    assert alice.client.get(f"/api/jobs/{jobs[1]}").json()["status"] == "queued"
    everything = alice.client.post("/api/lalalai/cancel-all", headers=headers).json()
    assert everything["job_ids"] == [jobs[1]]
    assert alice.client.get(f"/api/jobs/{jobs[1]}").json()["status"] == "cancelled"
    # The local job is not LALAL.AI work: it stays.
    assert alice.client.get(f"/api/jobs/{local['id']}").json()["status"] == "queued"


def test_a_key_refused_with_http_400_is_an_auth_error_everywhere(
    alice: User, fake_lalalai: FakeLalalai, wav: Path
) -> None:
    # What the live provider answers for a wrong key (issue 15, defect 4).
    fake_lalalai.unknown_key_answer = (400, {"detail": "License key is invalid."})
    headers = alice.headers()
    tested = alice.client.post("/api/lalalai/test-key", json={"key": "wrong-key-0000"},
                               headers=headers)
    assert tested.status_code == 422, tested.text
    error = tested.json()["error"]
    assert error["code"] == "auth_error"
    assert "refused the license key" in error["message"]
    assert "Settings → Cloud Separation" in error["message"]
    alice.client.patch("/api/settings", json={"lalalai_api_key": "wrong-key-0000"},
                       headers=headers)
    quota = alice.client.get("/api/lalalai/quota")
    assert quota.status_code == 422 and quota.json()["error"]["code"] == "auth_error"
    track = upload(alice.client, alice.csrf, wav)["id"]
    separation = alice.client.post(f"/api/tracks/{track}/separations",
                                   json={"engine": "lalalai"}, headers=headers)
    assert separation.status_code == 422 and separation.json()["error"]["code"] == "auth_error"
    assert alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"] == []


def _running_job_with_a_task(client: User, pipeline, fake: FakeLalalai, key: str,
                             wav: Path) -> tuple[str, str]:
    """A LALAL.AI job as its worker leaves it mid-run: the file uploaded, one
    task in progress at the provider, its id recorded on the running job."""
    from pydantic import SecretStr

    from soundforge.db import ProcessingJob
    from soundforge.engines.lalalai.client import LalalaiClient

    track = upload(client.client, client.csrf, wav)["id"]
    job_id = client.client.post(f"/api/tracks/{track}/separations",
                                json={"engine": "lalalai", "stems": ["vocals"]},
                                headers=client.headers()).json()["id"]
    fake.hold()
    with LalalaiClient(fake.url, SecretStr(key)) as lalalai:
        source_id = lalalai.upload(wav).id
        task_id = lalalai.split_stem_separator(source_id, {"stem": "vocals"})
    with pipeline.db.transaction() as session:
        job = session.get(ProcessingJob, job_id)
        job.status = "running"
        job.provider_task_ids = [task_id]
        job.provider_source_id = source_id
    return job_id, task_id


def test_cancel_all_with_the_shared_key_stops_only_this_users_tasks(
    alice: User, bob: User, pipeline, fake_lalalai: FakeLalalai, wav: Path
) -> None:
    pipeline.settings.system_lalalai_activation_key = SecretStr(  # type: ignore[misc]
        fake_lalalai.key)
    mine, my_task = _running_job_with_a_task(alice, pipeline, fake_lalalai, fake_lalalai.key,
                                             wav)
    _, bobs_task = _running_job_with_a_task(bob, pipeline, fake_lalalai, fake_lalalai.key, wav)
    answer = alice.client.post("/api/lalalai/cancel-all", headers=alice.headers()).json()
    assert answer == {"cancelled": 1, "job_ids": [mine], "provider_tasks_cancelled": 1}
    assert fake_lalalai.tasks[my_task].status == "cancelled"
    assert fake_lalalai.tasks[bobs_task].status == "progress"
    fake_lalalai.release()


def test_cancel_counts_the_tasks_it_cancelled_at_the_provider(
    alice: User, fake_lalalai: FakeLalalai, wav: Path, pipeline
) -> None:
    """A running job's task is cancelled at LALAL.AI by the request itself, and
    the answer says so (issue 15, defect 9: it said 0)."""
    headers = alice.headers()
    alice.client.patch("/api/settings", json={"lalalai_api_key": fake_lalalai.key},
                       headers=headers)
    job_id, task_id = _running_job_with_a_task(alice, pipeline, fake_lalalai,
                                               fake_lalalai.key, wav)
    answer = alice.client.post("/api/lalalai/cancel", json={"job_id": job_id}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"cancelled": 1, "job_ids": [job_id], "provider_tasks_cancelled": 1}
    assert fake_lalalai.tasks[task_id].status == "cancelled"
    fake_lalalai.release()


def test_saving_a_key_tests_it_and_says_the_result_first(
    alice: User, fake_lalalai: FakeLalalai, pipeline
) -> None:
    """Issue 15, defect 6: an invalid key was "saved" with a green banner."""
    fake_lalalai.unknown_key_answer = (400, {"detail": "License key is invalid."})
    refused = alice.client.post("/settings/cloud", data={
        "csrf_token": alice.csrf, "engine": "lalalai", "lalalai_api_key": "bad-key-1111"})
    assert refused.status_code == 422
    page = refused.text
    assert "settings saved" not in page and "alert-ok" not in page
    error_at = page.index('class="alert alert-error"')
    assert error_at < page.index('id="demucs"'), "the result must be the page's first line"
    assert "Nothing was saved. LALAL.AI refused the license key" in page
    assert 'name="engine" value="lalalai" checked' in page  # the choice is kept on the page
    assert alice.client.get("/api/settings").json()["lalalai_key_set"] is False
    assert alice.client.get("/api/settings").json()["engine"] == "local"

    fake_lalalai.set_minutes(42.5)
    saved = alice.client.post("/settings/cloud", data={
        "csrf_token": alice.csrf, "engine": "lalalai", "lalalai_api_key": fake_lalalai.key})
    assert saved.status_code == 200  # followed the redirect
    assert "Cloud separation settings saved. The key works: 42.5 minutes left." in saved.text
    assert alice.client.get("/api/settings").json()["lalalai_key_set"] is True


def test_a_key_that_cannot_be_checked_is_saved_with_a_warning(
    alice: User, fake_lalalai: FakeLalalai
) -> None:
    fake_lalalai.fail_next("minutes_left", 10)  # LALAL.AI is down (HTTP 503)
    saved = alice.client.post("/settings/cloud", data={
        "csrf_token": alice.csrf, "engine": "local", "lalalai_api_key": fake_lalalai.key})
    assert "alert-info" in saved.text and "could not be checked now" in saved.text
    assert alice.client.get("/api/settings").json()["lalalai_key_set"] is True
