"""The RoFormer models in the web app: the Separate picker (ready or what it
needs), the form, the REST API and the default-model setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.web.conftest import User
from tests.web.helpers import upload


@pytest.fixture
def track(alice: User, wav: Path) -> str:
    return upload(alice.client, alice.csrf, wav)["id"]


def test_the_picker_offers_every_roformer_model_with_its_state(
    alice: User, track: str, pipeline, tiny_repo: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline.settings.model_repo = tiny_repo  # type: ignore[misc]
    page = alice.client.get(f"/tracks/{track}/separate").text
    for name, stems in (("bs_roformer_6s", 6), ("bs_roformer_vocals", 2),
                        ("mel_roformer_vocals", 2), ("mel_roformer_karaoke", 2)):
        assert re.search(rf'value="{name}" data-available="1" data-state="ready"', page)
        assert f"{name} · {stems} stems · ready" in page
    # No repository and nothing downloaded: the picker says what to run.
    pipeline.settings.model_repo = None  # type: ignore[misc]
    monkeypatch.setenv("SOUNDFORGE_MODEL_CACHE", str(tmp_path / "empty-cache"))
    alice.client.patch("/api/settings", json={"demucs_model": "mel_roformer_vocals"},
                       headers=alice.headers())
    page = alice.client.get(f"/tracks/{track}/separate").text
    assert re.search(r'value="mel_roformer_vocals" data-available="0" '
                     r'data-state="not downloaded \(~913 MB\)" selected', page)
    assert "run “soundforge models download mel_roformer_vocals” on the server first" in page
    # The comparison table has them too, with their quality.
    assert "Kimberley Jensen" in page


def test_the_form_and_the_api_create_roformer_jobs(alice: User, track: str) -> None:
    response = alice.client.post(
        f"/tracks/{track}/separate",
        data={"csrf_token": alice.csrf, "next": "/", "engine": "local",
              "model": "bs_roformer_6s", "format": "flac", "split_mode": "two",
              "two_stems": "guitar"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    (job,) = alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"]
    assert job["options"]["model"] == "bs_roformer_6s"
    assert job["options"]["two_stems"] == "guitar"

    response = alice.client.post(f"/api/tracks/{track}/separations",
                                 json={"model": "mel_roformer_karaoke", "two_stems": "vocals"},
                                 headers=alice.headers())
    assert response.status_code == 202, response.text
    assert response.json()["model"] == "mel_roformer_karaoke"


def test_a_stem_a_roformer_model_lacks_is_refused_by_the_api(alice: User, track: str) -> None:
    response = alice.client.post(f"/api/tracks/{track}/separations",
                                 json={"model": "mel_roformer_vocals", "stems": ["drums"]},
                                 headers=alice.headers())
    assert response.status_code == 422
    assert "has no stem 'drums'" in response.json()["error"]["message"]


def test_a_roformer_model_can_be_the_default(alice: User) -> None:
    page = alice.client.get("/settings").text
    assert 'value="bs_roformer_6s"' in page
    response = alice.client.patch("/api/settings", json={"demucs_model": "bs_roformer_6s"},
                                  headers=alice.headers())
    assert response.status_code == 200
    assert alice.client.get("/api/settings").json()["demucs_model"] == "bs_roformer_6s"
