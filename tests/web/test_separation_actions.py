"""One separation at a time: its own ZIP, deleting it with its files, and the
original mix the player compares it with (issue 15)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.web.conftest import User
from tests.web.helpers import completed_job, upload


@pytest.fixture
def two_runs(alice: User, pipeline, wav: Path) -> tuple[str, str, str]:
    track = upload(alice.client, alice.csrf, wav)["id"]
    first = completed_job(pipeline, track, ("vocals", "drums"))
    second = completed_job(pipeline, track, ("vocals", "no_vocals"))
    return track, first, second


def test_zip_of_one_separation(alice: User, bob: User, two_runs) -> None:
    track, first, second = two_runs
    response = alice.client.get(f"/export/jobs/{second}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "My Song - local-htdemucs-" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        assert sorted(Path(name).name for name in names) == ["no_vocals.wav", "vocals.wav"]
        assert len({Path(name).parent for name in names}) == 1
        assert archive.testzip() is None
    # The track's ZIP still holds both runs; the card links its own.
    with zipfile.ZipFile(io.BytesIO(alice.client.get(f"/export/stems/{track}").content)) as all_:
        assert len(all_.namelist()) == 4
    page = alice.client.get(f"/tracks/{track}").text
    assert f'href="/export/jobs/{first}"' in page and f'href="/export/jobs/{second}"' in page
    assert bob.client.get(f"/export/jobs/{second}").status_code == 404


def test_zip_of_an_unfinished_separation_is_404(alice: User, pipeline, wav: Path) -> None:
    track = upload(alice.client, alice.csrf, wav)["id"]
    queued = alice.client.post(f"/api/tracks/{track}/separations",
                               headers=alice.headers()).json()["id"]
    response = alice.client.get(f"/export/jobs/{queued}", headers={"Accept": "*/*"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_delete_one_separation_with_its_files(alice: User, bob: User, pipeline,
                                              two_runs) -> None:
    track, first, second = two_runs
    folder = pipeline.uploads_dir / "stems" / first
    assert folder.is_dir()
    # Not Bob's to delete, and a cookie without the CSRF token changes nothing.
    assert bob.client.delete(f"/api/jobs/{first}", headers=bob.headers()).status_code == 404
    assert alice.client.post(f"/jobs/{first}/delete").status_code == 403
    response = alice.client.post(f"/jobs/{first}/delete", data={"csrf_token": alice.csrf},
                                 follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/tracks/{track}"
    assert not folder.exists()
    jobs = alice.client.get(f"/api/tracks/{track}/jobs").json()["jobs"]
    assert [job["id"] for job in jobs] == [second]
    stems = alice.client.get(f"/api/tracks/{track}/stems").json()["stems"]
    assert {stem["job_id"] for stem in stems} == {second}
    assert (pipeline.uploads_dir / "stems" / second / "vocals.wav").is_file()
    page = alice.client.get(f"/tracks/{track}").text
    assert "Separation deleted with its stems." in page and f"job-{first}" not in page
    # The API does the same; a second delete finds nothing.
    assert alice.client.delete(f"/api/jobs/{second}", headers=alice.headers()).status_code == 204
    assert alice.client.delete(f"/api/jobs/{second}", headers=alice.headers()).status_code == 404
    assert not (pipeline.uploads_dir / "stems" / second).exists()
    assert alice.client.get(f"/api/tracks/{track}").status_code == 200  # the track stays


def test_deleting_a_queued_separation_takes_it_off_the_queue(
    alice: User, pipeline, wav: Path
) -> None:
    track = upload(alice.client, alice.csrf, wav)["id"]
    job = alice.client.post(f"/api/tracks/{track}/separations", headers=alice.headers()).json()
    assert alice.client.delete(f"/api/jobs/{job['id']}", headers=alice.headers()).status_code == 204
    assert alice.client.get(f"/api/jobs/{job['id']}").status_code == 404
    again = alice.client.post(f"/api/tracks/{track}/separations", headers=alice.headers())
    assert again.status_code == 202 and again.json()["id"] != job["id"]


def test_the_original_mix_for_the_player(alice: User, bob: User, pipeline, two_runs,
                                         wav: Path) -> None:
    track, _, _ = two_runs
    audio = alice.client.get(f"/files/tracks/{track}/audio")
    assert audio.status_code == 200 and audio.content == wav.read_bytes()
    assert audio.headers["content-type"] == "audio/x-wav" or audio.headers[
        "content-type"].startswith("audio/")
    part = alice.client.get(f"/files/tracks/{track}/audio", headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"RIFF"
    peaks = alice.client.get(f"/api/tracks/{track}/peaks").json()
    assert peaks["track_id"] == track and len(peaks["mins"]) == len(peaks["maxs"]) > 100
    assert abs(peaks["duration"] - 2.0) < 0.05
    assert bob.client.get(f"/files/tracks/{track}/audio").status_code == 404
    assert bob.client.get(f"/api/tracks/{track}/peaks").status_code == 404
    page = alice.client.get(f"/tracks/{track}").text
    assert page.count(f'data-src="/files/tracks/{track}/audio"') == 2  # one per player


def test_player_order_and_complement_groups(alice: User, pipeline, wav: Path) -> None:
    """Musical order, not alphabetical; complements apart, muted by default
    when they would double the stems (several stems), playing when they do
    not (one stem and its complement: karaoke)."""
    track = upload(alice.client, alice.csrf, wav)["id"]
    many = completed_job(pipeline, track, ("piano", "bass", "no_drums", "rest", "drums",
                                           "vocals", "no_vocals", "other", "lead_vocals",
                                           "no_lead_vocals"))
    karaoke = completed_job(pipeline, track, ("no_vocals", "vocals"))
    page = alice.client.get(f"/tracks/{track}").text

    def rows(job_id: str) -> list[tuple[str, bool]]:
        import re

        card = page.split(f'data-job-card="{job_id}"', 1)[1].split("</section>", 1)[0]
        return [(name, "data-default-muted" in attrs) for name, attrs in re.findall(
            r'data-stem (?:data-original )?data-name="([a-z_]+)"([^>]*)>', card)]

    assert rows(many) == [
        ("vocals", False), ("lead_vocals", False), ("drums", False), ("bass", False),
        ("piano", False), ("other", False),
        ("no_vocals", True), ("no_lead_vocals", True), ("no_drums", True), ("rest", True),
        ("original", True),
    ]
    assert rows(karaoke) == [("vocals", False), ("no_vocals", False), ("original", True)]


def test_the_card_swapped_in_live_has_the_same_actions(alice: User, two_runs) -> None:
    """The track page replaces a finishing job's card with this fragment."""
    track, first, _ = two_runs
    fragment = alice.client.get(f"/tracks/{track}/jobs/{first}")
    assert fragment.status_code == 200
    html = fragment.text
    assert f'href="/export/jobs/{first}"' in html and f'action="/jobs/{first}/delete"' in html
    assert "data-job-details" in html and "data-original" in html
    assert 'name="csrf_token" value="' in html and 'value=""' not in html.split(
        "data-job-delete")[0].rsplit("csrf_token", 1)[1][:40]
