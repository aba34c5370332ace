"""Exports through HTTP: NI Stems and mix downloads of a separation, the ZIP's
file-name template (Settings and API). Files are read back with ffprobe/ffmpeg."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mutagen.mp4 import Atoms

from soundforge.db import ProcessingJob, Track
from tests.export.conftest import ffmpeg_decode, ffprobe, needs_ffmpeg
from tests.web.conftest import SharedSite, User
from tests.web.helpers import completed_job, upload

FOUR = ("drums", "bass", "other", "vocals")


@pytest.fixture
def job(alice: User, pipeline, wav: Path) -> tuple[str, str]:
    track = upload(alice.client, alice.csrf, wav)["id"]
    return track, completed_job(pipeline, track, FOUR, seconds=1.5)


@pytest.fixture(scope="module")
def shared_job(shared_site: SharedSite) -> str:
    """For the bad requests that write nothing (each checks it left no file):
    one finished separation per module, as ``job`` makes it."""
    return completed_job(shared_site.pipeline, shared_site.track, FOUR, seconds=1.5)


def stems_on_disk(pipeline, job_id: str) -> dict[str, np.ndarray]:
    folder = pipeline.uploads_dir / "stems" / job_id
    return {name: sf.read(str(folder / f"{name}.wav"), dtype="float32")[0] for name in FOUR}


def leftovers(pipeline) -> list[Path]:
    exports = pipeline.uploads_dir.parent / "exports"
    return [p for p in exports.rglob("*")] if exports.exists() else []


@needs_ffmpeg
def test_nistems_download(alice: User, pipeline, job, tmp_path: Path) -> None:
    _, job_id = job
    response = alice.client.get(f"/export/nistems/{job_id}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/mp4"
    assert 'filename="My Song.stem.mp4"' in response.headers["content-disposition"]
    produced = tmp_path / "got.stem.mp4"
    produced.write_bytes(response.content)
    info = ffprobe(produced)
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert [s["codec_name"] for s in audio] == ["aac"] * 5
    assert [s["disposition"]["default"] for s in audio] == [1, 0, 0, 0, 0]
    assert all(abs(float(s["duration"]) - 1.5) < 0.005 for s in audio)
    assert info["format"]["tags"]["title"] == "My Song"
    with open(produced, "rb") as handle:
        ok, data = Atoms(handle).path(b"moov", b"udta", b"stem")[-1].read(handle)
    assert ok
    assert [s["name"] for s in json.loads(data)["stems"]] == ["Drums", "Bass", "Other", "Vocals"]
    assert leftovers(pipeline) == []  # the work folder went with the response

    response = alice.client.get(f"/export/nistems/{job_id}?codec=alac")
    assert response.status_code == 200
    produced.write_bytes(response.content)
    assert {s["codec_name"] for s in ffprobe(produced)["streams"]
            if s["codec_type"] == "audio"} == {"alac"}


@needs_ffmpeg
def test_mix_download_is_the_players_sum(alice: User, pipeline, job, tmp_path: Path) -> None:
    _, job_id = job
    response = alice.client.get(
        f"/export/mix/{job_id}",
        params={"mix": "drums=0.5", "mute": "bass,vocals", "solo": "", "master": "0.5",
                "format": "wav"},
    )
    assert response.status_code == 200, response.text
    assert 'filename="My Song (mix).wav"' in response.headers["content-disposition"]
    (tmp_path / "mix.wav").write_bytes(response.content)
    stems = stems_on_disk(pipeline, job_id)
    expected = 0.5 * (0.5 * stems["drums"] + stems["other"])
    np.testing.assert_allclose(ffmpeg_decode(tmp_path / "mix.wav"), expected, atol=1.01 / 32768)

    response = alice.client.get(f"/export/mix/{job_id}?preset=acappella&format=flac")
    assert response.status_code == 200
    assert 'filename="My Song (acappella).flac"' in response.headers["content-disposition"]
    (tmp_path / "voc.flac").write_bytes(response.content)
    np.testing.assert_allclose(ffmpeg_decode(tmp_path / "voc.flac"), stems["vocals"],
                               atol=1.01 / 32768)
    assert leftovers(pipeline) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("mix=flute=0.5", "no flute stem"),
        ("mix=vocals=2", "from 0 to 1"),
        ("mute=drums,bass,other,vocals", "This mix is silent"),
        ("preset=nightcore", "Unknown mix preset"),
        ("preset=drumless&mute=bass", "give it alone"),
        ("format=ogg", "Unknown mix format"),
    ],
)
def test_bad_mix_requests_say_what_to_change(shared_site: SharedSite, shared_job: str,
                                             query: str, message: str) -> None:
    alice, pipeline, job_id = shared_site.alice, shared_site.pipeline, shared_job
    response = alice.client.get(f"/export/mix/{job_id}?{query}", headers=alice.headers())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_option"
    assert message in response.json()["error"]["message"]
    assert leftovers(pipeline) == []


def test_bad_nistems_requests_say_what_to_change(alice: User, pipeline, job) -> None:
    _, job_id = job
    for query, message in [("codec=opus", "Unknown stem codec"),
                           ("stem_map=vocals=flute", "does not have")]:
        response = alice.client.get(f"/export/nistems/{job_id}?{query}", headers=alice.headers())
        assert response.status_code == 422
        assert message in response.json()["error"]["message"]
    assert leftovers(pipeline) == []


def test_exports_of_someone_elses_job_are_404(alice: User, bob: User, anon, job) -> None:
    _, job_id = job
    for path in (f"/export/nistems/{job_id}", f"/export/mix/{job_id}"):
        response = bob.client.get(path, headers=bob.headers())
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        response = anon.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 401


def test_zip_entries_follow_the_users_template(alice: User, pipeline, job) -> None:
    track_id, _ = job
    with pipeline.db.transaction() as session:
        session.get(Track, track_id).title = "AC/DC: Live"
    response = alice.client.patch("/api/settings", headers=alice.headers(),
                                  json={"filename_template": "{track}-{stem}.{ext}"})
    assert response.status_code == 200, response.text
    assert response.json()["filename_template"] == "{track}-{stem}.{ext}"

    response = alice.client.get(f"/export/stems/{track_id}")
    assert response.status_code == 200
    names = sorted(zipfile.ZipFile(io.BytesIO(response.content)).namelist())
    # The title's "/" is not a folder in the archive.
    assert names == sorted(f"AC_DC_ Live-{stem}.wav" for stem in FOUR)

    # A second separation would reuse every name: refused, saying what to add.
    completed_job(pipeline, track_id, FOUR, seconds=0.5)
    response = alice.client.get(f"/export/stems/{track_id}", headers=alice.headers())
    assert response.status_code == 422
    assert "add {model}, {engine} or {date}" in response.json()["error"]["message"]

    # Back to the built-in layout.
    response = alice.client.patch("/api/settings", headers=alice.headers(),
                                  json={"filename_template": ""})
    assert response.json()["filename_template"] is None
    response = alice.client.get(f"/export/stems/{track_id}")
    assert response.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(response.content)).namelist()) == 8


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{track}/{stem}.{codec}", "unknown variable {codec}"),
        ("../{stem}.{ext}", "contains '..'"),
        ("/srv/{stem}.{ext}", "absolute path"),
        ("{track}.{ext}", "has no {stem}"),
    ],
)
def test_bad_templates_are_refused_in_the_api_and_the_settings_page(
    shared_site: SharedSite, template: str, message: str
) -> None:
    alice = shared_site.alice
    response = alice.client.patch("/api/settings", headers=alice.headers(),
                                  json={"filename_template": template})
    assert response.status_code == 422
    assert message in response.json()["error"]["message"]
    response = alice.client.post("/settings/exports",
                                 data={"csrf_token": alice.csrf, "filename_template": template})
    assert response.status_code == 422
    assert message in response.text.replace("&#39;", "'")
    assert alice.client.get("/api/settings").json()["filename_template"] is None


def test_the_settings_page_saves_the_template(alice: User) -> None:
    response = alice.client.post(
        "/settings/exports",
        data={"csrf_token": alice.csrf, "filename_template": "{model}/{track} - {stem}.{ext}"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    page = alice.client.get("/settings").text
    assert 'value="{model}/{track} - {stem}.{ext}"' in page


def test_the_track_page_offers_the_exports_that_fit(alice: User, pipeline, wav: Path) -> None:
    track_id = upload(alice.client, alice.csrf, wav)["id"]
    four = completed_job(pipeline, track_id, FOUR)
    karaoke = completed_job(pipeline, track_id, ("vocals", "no_vocals"))
    page = alice.client.get(f"/tracks/{track_id}").text
    assert f'action="/export/mix/{four}"' in page
    assert f'href="/export/nistems/{karaoke}"' in page
    card = page[page.index(f'id="job-{karaoke}"'):]
    card = card[: card.index("</section>")]
    assert 'value="instrumental"' in card and 'value="acappella"' in card
    assert 'value="drumless"' not in card  # no drums stem in a karaoke separation


def test_a_job_without_stems_yet_cannot_be_exported(alice: User, pipeline, job) -> None:
    _, job_id = job
    with pipeline.db.transaction() as session:
        session.get(ProcessingJob, job_id).status = "running"
    for path in (f"/export/nistems/{job_id}", f"/export/mix/{job_id}"):
        response = alice.client.get(path, headers=alice.headers())
        assert response.status_code == 422
        assert "has no stems to export (it is running)" in response.json()["error"]["message"]


@pytest.mark.parametrize("damage", ["deleted", "leaves_uploads"])
def test_a_stem_file_that_is_gone_or_outside_uploads_is_refused(
    alice: User, pipeline, job, damage: str
) -> None:
    """Exports reach stored files through the one resolve_upload: a missing file
    or a hand-edited row pointing out of uploads/ is named, never read."""
    _, job_id = job
    with pipeline.db.transaction() as session:
        stem = session.get(ProcessingJob, job_id).stems[0]
        if damage == "deleted":
            (pipeline.uploads_dir / stem.file_path).unlink()
        else:
            stem.file_path = "../secret_key"
        relative = stem.file_path
    for path in (f"/export/nistems/{job_id}", f"/export/mix/{job_id}"):
        response = alice.client.get(path, headers=alice.headers())
        assert response.status_code == 422, path
        assert response.json()["error"]["message"] == (
            f"A stored file of this separation is missing ({relative}): "
            "separate the track again."), path
    assert leftovers(pipeline) == []


@needs_ffmpeg
def test_the_cli_exports_a_web_job_by_its_id(settings, pipeline, job, tmp_path: Path) -> None:
    _, job_id = job
    env = {**os.environ, "SOUNDFORGE_DATA_DIR": str(settings.data_dir), "COLUMNS": "300"}
    run = [sys.executable, "-m", "soundforge"]
    result = subprocess.run([*run, "export-stems", job_id, "-o", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "master: original" in result.stdout
    produced = tmp_path / "My Song.stem.mp4"
    assert len([s for s in ffprobe(produced)["streams"] if s["codec_type"] == "audio"]) == 5

    result = subprocess.run([*run, "mix", job_id, "--preset", "bassless", "-o", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    stems = stems_on_disk(pipeline, job_id)
    np.testing.assert_allclose(ffmpeg_decode(tmp_path / "My Song (bassless).wav"),
                               stems["drums"] + stems["other"] + stems["vocals"],
                               atol=1.01 / 32768)


def test_folders_a_killed_server_left_are_swept(alice: User, pipeline, job) -> None:
    _, job_id = job
    exports = pipeline.uploads_dir.parent / "exports"
    stale = exports / "export-killed"
    stale.mkdir(parents=True)
    (stale / "half.stem.mp4").write_bytes(b"\0" * 100)
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    fresh = exports / "export-sending"
    fresh.mkdir()
    response = alice.client.get(f"/export/mix/{job_id}")
    assert response.status_code == 200
    assert not stale.exists()
    assert fresh.exists()  # another request may still be sending it
