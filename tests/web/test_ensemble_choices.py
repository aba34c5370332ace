"""Ensembles over HTTP: the API lists and takes them, the forms and settings offer presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundforge.engines.local.ensemble import PRESETS
from tests.web.conftest import User
from tests.web.helpers import upload


@pytest.fixture
def track(alice: User, wav: Path) -> str:
    return upload(alice.client, alice.csrf, wav)["id"]


def test_api_lists_presets_with_their_stems_and_rationale(alice: User) -> None:
    rows = {row["name"]: row for row in alice.client.get("/api/models").json()}
    for name, preset in PRESETS.items():
        assert rows[name]["engine"] == "local ensemble"
        assert preset.rationale in rows[name]["description"]
    assert sorted(rows["ensemble_six_stems"]["stems"]) == [
        "bass", "drums", "guitar", "other", "piano", "vocals"]
    assert rows["ensemble_vocals_max"]["stems"] == ["vocals"]


def test_api_takes_a_typed_ensemble_and_refuses_a_bad_one(alice: User, track: str) -> None:
    url = f"/api/tracks/{track}/separations"
    created = alice.client.post(url, json={"model": "htdemucs_ft:2+htdemucs_6s@guitar",
                                           "stems": ["guitar", "vocals"]},
                                headers=alice.headers())
    assert created.status_code == 202, created.text
    assert created.json()["model"] == "htdemucs_ft:2+htdemucs_6s@guitar"
    refused = alice.client.post(url, json={"model": "htdemucs+htdemucs"},
                                headers=alice.headers())
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "invalid_option" and "appears twice" in error["message"]
    # The schema documents the syntax.
    schema = alice.client.get("/openapi.json").json()["components"]["schemas"]["SeparationIn"]
    assert "max-spec/" in schema["properties"]["model"]["description"]


def test_the_form_offers_presets_and_sends_them(alice: User, track: str) -> None:
    page = alice.client.get(f"/tracks/{track}/separate").text
    assert '<optgroup label="Ensembles (several models combined)">' in page
    for name in PRESETS:
        assert f'<option value="{name}"' in page
    response = alice.client.post(
        f"/tracks/{track}/separate",
        data={"csrf_token": alice.csrf, "next": "/", "engine": "local",
              "model": "ensemble_six_stems", "format": "wav",
              # Every stem of the preset ticked is "all stems".
              "stems": ["vocals", "drums", "bass", "other", "guitar", "piano"]},
        follow_redirects=False)
    assert response.status_code == 303, response.text
    (job,) = alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"]
    assert job["model"] == "ensemble_six_stems"
    assert job["options"].get("stems") in (None, [])


def test_settings_take_a_preset_but_not_a_typed_ensemble(alice: User) -> None:
    saved = alice.client.patch("/api/settings", json={"demucs_model": "ensemble_average"},
                               headers=alice.headers())
    assert saved.status_code == 200, saved.text
    assert saved.json()["demucs_model"] == "ensemble_average"
    page = alice.client.get("/settings").text
    assert '<option value="ensemble_average" title=' in page and "selected" in page.split(
        '<option value="ensemble_average"')[1].split(">")[0]
    refused = alice.client.patch("/api/settings", json={"demucs_model": "htdemucs+mdx_extra"},
                                 headers=alice.headers())
    assert refused.status_code == 422
    assert "Choose a model or an ensemble preset" in refused.json()["error"]["message"]
