"""The Separate form's choices beyond the seed (issue 15): two stems for the
local engine, LALAL.AI's splitter and extraction level, the cost estimate,
one click from a preview to the full track, models available or not, and a
batch of tracks with one set of options."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from soundforge.db import ProcessingJob
from tests.support.audio import write_audio
from tests.support.fake_lalalai import FakeLalalai
from tests.web.conftest import User
from tests.web.helpers import completed_job, upload


@pytest.fixture
def track(alice: User, wav: Path) -> str:
    return upload(alice.client, alice.csrf, wav)["id"]


def _post(alice: User, track: str, **fields: object):
    return alice.client.post(f"/tracks/{track}/separate",
                             data={"csrf_token": alice.csrf, "next": "/", **fields},
                             follow_redirects=False)


def test_two_stems_from_the_form(alice: User, track: str) -> None:
    """Karaoke in the web UI: one stem and everything else."""
    page = alice.client.get(f"/tracks/{track}/separate").text
    assert 'name="split_mode" value="two"' in page and 'name="two_stems"' in page
    response = _post(alice, track, engine="local", model="htdemucs", format="wav",
                     split_mode="two", two_stems="vocals", stems=["vocals", "drums"])
    assert response.status_code == 303
    (job,) = alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"]
    assert job["options"]["two_stems"] == "vocals"
    assert "stems" not in job["options"] or job["options"]["stems"] in (None, [])
    # Any other stem too, and the "stems" mode ignores the two-stem choice.
    _post(alice, track, engine="local", model="htdemucs", split_mode="two", two_stems="bass")
    _post(alice, track, engine="local", model="htdemucs", split_mode="stems",
          two_stems="drums", stems=["drums"])
    jobs = alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"]
    assert [j["options"].get("two_stems") for j in jobs] == [None, "bass", "vocals"]
    assert jobs[0]["options"]["stems"] == ["drums"]


def test_lalalai_splitter_and_extraction_level_from_the_form(
    alice: User, track: str, fake_lalalai: FakeLalalai
) -> None:
    alice.client.patch("/api/settings", json={"lalalai_api_key": fake_lalalai.key},
                       headers=alice.headers())
    page = alice.client.get(f"/tracks/{track}/separate").text
    assert '<option value="phoenix"' in page and '<option value="clear_cut"' in page
    response = _post(alice, track, engine="lalalai", stems=["synth"], splitter="phoenix",
                     extraction_level="clear_cut", preview="1")
    assert response.status_code == 303, response.text
    (job,) = alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"]
    assert job["options"]["splitter"] == "phoenix"
    assert job["options"]["extraction_level"] == "clear_cut"
    assert job["options"]["preview"] is True
    # The engine's own rule still applies, with its words, in the form.
    refused = _post(alice, track, engine="lalalai", stems=["synth"], splitter="orion")
    assert refused.status_code == 422 and "phoenix" in refused.text
    assert '<option value="orion" selected>' in refused.text  # the choice is kept


def test_cost_estimate_is_duration_times_stems(
    alice: User, track: str, bob: User, fake_lalalai: FakeLalalai, tmp_path: Path
) -> None:
    headers = alice.headers()
    # wav is 2 s: 2 s × 3 stems = 0.1 minutes; no key needed to estimate.
    cost = alice.client.post("/api/lalalai/estimate", headers=headers, json={
        "track_id": track, "stems": ["vocals", "drums", "bass"]})
    assert cost.status_code == 200, cost.text
    assert cost.json() == {"minutes": 0.1, "seconds": 2, "stems": 3}
    long_song = upload(alice.client, alice.csrf,
                       write_audio(tmp_path / "Long.mp3", seconds=90.0, rate=8000,
                                   channels=1))["id"]
    preview = alice.client.post("/api/lalalai/estimate", headers=headers, json={
        "track_id": long_song, "stems": ["vocals"], "preview": True}).json()
    assert preview == {"minutes": 1.0, "seconds": 60, "stems": 1}
    unknown = alice.client.post("/api/lalalai/estimate", headers=headers,
                                json={"track_id": track, "stems": ["kazoo"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "invalid_option"
    others = bob.client.post("/api/lalalai/estimate", headers=bob.headers(),
                             json={"track_id": track})
    assert others.status_code == 404
    # The form carries what the script needs to compare it with the minutes left.
    page = alice.client.get(f"/tracks/{track}/separate").text
    assert 'data-estimate-url="/api/lalalai/estimate"' in page
    assert f'data-track-id="{track}"' in page


def test_a_finished_preview_offers_the_full_track_in_one_click(
    alice: User, track: str, pipeline, fake_lalalai: FakeLalalai
) -> None:
    alice.client.patch("/api/settings", json={"lalalai_api_key": fake_lalalai.key},
                       headers=alice.headers())
    preview = completed_job(pipeline, track, ("vocals", "no_vocals"),
                            provider_task_ids=("task-1",))
    with pipeline.db.transaction() as session:
        job = session.get(ProcessingJob, preview)
        job.options = {"format": "flac", "stems": ["vocals"], "preview": True,
                       "splitter": "perseus", "extraction_level": "clear_cut"}
    page = alice.client.get(f"/tracks/{track}").text
    form = page.split("data-full-track", 1)[1].split("</form>", 1)[0]
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form))
    assert fields["engine"] == "lalalai" and fields["format"] == "flac"
    assert fields["splitter"] == "perseus" and fields["extraction_level"] == "clear_cut"
    assert fields["stems"] == "vocals" and "preview" not in fields
    response = alice.client.post(f"/tracks/{track}/separate", data=fields,
                                 follow_redirects=False)
    assert response.status_code == 303, response.text
    newest = alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"][0]
    assert newest["id"] != preview
    assert newest["options"]["preview"] is False
    assert newest["options"]["splitter"] == "perseus"
    assert newest["options"]["stems"] == ["vocals"]


def test_the_form_says_which_models_are_on_this_machine(
    alice: User, track: str, pipeline, tmp_path: Path
) -> None:
    from tests.support.tiny_models import build_tiny_repo

    pipeline.settings.model_repo = build_tiny_repo(tmp_path / "models",  # type: ignore[misc]
                                                   names=("htdemucs",))
    page = alice.client.get(f"/tracks/{track}/separate").text
    assert re.search(r'value="htdemucs" data-available="1" data-state="ready"', page)
    assert re.search(r'value="htdemucs_6s" data-available="0" '
                     r'data-state="not in the model repository"', page)
    assert "htdemucs · 4 stems · ready" in page


def test_batch_separates_every_selected_track_with_one_set_of_options(
    alice: User, bob: User, tmp_path: Path
) -> None:
    ids = [upload(alice.client, alice.csrf, write_audio(tmp_path / f"T{n}.wav", seconds=1.0,
                                                         seed=n))["id"] for n in range(3)]
    theirs = upload(bob.client, bob.csrf, write_audio(tmp_path / "Bob.wav", seconds=1.0))["id"]
    library = alice.client.get("/").text
    assert library.count("data-select-track") == 3 and "data-batch-separate" in library
    response = alice.client.post("/tracks/separate-batch", data={
        "csrf_token": alice.csrf, "engine": "local", "model": "htdemucs", "format": "flac",
        "split_mode": "two", "two_stems": "vocals", "track_ids": [*ids[:2], theirs]})
    assert response.status_code == 200  # followed to the library
    assert "Started 2 separations." in response.text
    assert "Not started: a track that is not in your library" in response.text
    for track_id in ids[:2]:
        (job,) = alice.client.get(f"/api/tracks/{track_id}/jobs").json()["jobs"]
        assert job["options"]["two_stems"] == "vocals" and job["options"]["format"] == "flac"
    assert alice.client.get(f"/api/tracks/{ids[2]}/jobs").json()["jobs"] == []
    assert bob.client.get(f"/api/tracks/{theirs}/jobs").json()["jobs"] == []
    nothing = alice.client.post("/tracks/separate-batch", data={"csrf_token": alice.csrf,
                                                                "engine": "local"})
    assert "Select at least one track" in nothing.text
    forged = alice.client.post("/tracks/separate-batch", data={"track_ids": ids})
    assert forged.status_code == 403
