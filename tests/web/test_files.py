"""Stem files and exports: the seed's routes, path traversal, streamed ZIPs."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundforge.web.zipstream import CHUNK, stream_zip
from tests.web.conftest import SharedSite, User
from tests.web.helpers import completed_job, upload


@pytest.fixture
def job(alice: User, pipeline, wav: Path) -> tuple[str, str]:
    track = upload(alice.client, alice.csrf, wav)["id"]
    return track, completed_job(pipeline, track, ("vocals", "drums", "bass"))


@pytest.fixture(scope="module")
def shared_job(shared_site: SharedSite) -> str:
    """One finished separation per module, as ``job`` makes it."""
    return completed_job(shared_site.pipeline, shared_site.track, ("vocals", "drums", "bass"))


def test_stem_file_is_served_with_range_support(alice: User, pipeline, job) -> None:
    _, job_id = job
    on_disk = (pipeline.uploads_dir / "stems" / job_id / "vocals.wav").read_bytes()
    response = alice.client.get(f"/files/stems/{job_id}/vocals.wav")
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.content == on_disk
    part = alice.client.get(f"/files/stems/{job_id}/vocals.wav", headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == on_disk[4:12]
    assert alice.client.get(f"/files/stems/{job_id}/piano.wav").status_code == 404


@pytest.mark.parametrize("name", [
    "..%2F..%2Fsoundforge.db",
    "%2e%2e%2f%2e%2e%2fsecret_key",
    "..%252F..%252Fsecret_key",
    "..%5C..%5Csecret_key",
    "%2e%2e",
    "vocals.wav%00.txt",
    "....%2F%2F....%2F%2Fsecret_key",
])
def test_path_traversal_is_impossible(shared_site: SharedSite, shared_job: str,
                                      name: str) -> None:
    # Only GETs: one app, user and finished separation for all the names.
    alice, pipeline, job_id = shared_site.alice, shared_site.pipeline, shared_job
    secret = (Path(pipeline.settings.data_dir) / "secret_key").read_text().strip()
    for url in (f"/files/stems/{job_id}/{name}", f"/files/stems/{name}/vocals.wav",
                f"/files/stems/{job_id}/../../secret_key", f"/files/{name}"):
        response = alice.client.get(url)
        assert response.status_code == 404, url
        assert secret not in response.text
        assert b"SQLite format" not in response.content


def test_export_one_stem_as_download(alice: User, pipeline, job) -> None:
    _, job_id = job
    stem = alice.client.get(f"/api/jobs/{job_id}/stems").json()["stems"][1]
    response = alice.client.get(stem["download_url"])
    assert response.status_code == 200
    assert 'filename="My Song - drums.wav"' in response.headers["content-disposition"]
    assert response.content == (pipeline.uploads_dir / stem["file_path"]).read_bytes()


def test_export_all_stems_as_streamed_zip(alice: User, pipeline, job) -> None:
    track, job_id = job
    second = completed_job(pipeline, track, ("vocals",))
    with alice.client.stream("GET", f"/export/stems/{track}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        # Streamed: the length is not known up front.
        assert "content-length" not in response.headers
        data = b"".join(response.iter_bytes())
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert len(names) == 4
        assert all(name.startswith("My Song/local-htdemucs-") for name in names)
        for name in names:
            job_folder = job_id if name.endswith(("drums.wav", "bass.wav")) else None
            stem = Path(name).name
            candidates = [job_folder] if job_folder else [job_id, second]
            assert any(
                archive.read(name) == (pipeline.uploads_dir / "stems" / c / stem).read_bytes()
                for c in candidates
            )


def test_export_without_stems_is_404(alice: User, wav: Path) -> None:
    track = upload(alice.client, alice.csrf, wav)["id"]
    response = alice.client.get(f"/export/stems/{track}", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_zip_stream_memory_stays_flat(tmp_path: Path) -> None:
    """A 24 MB export never holds more than about one chunk at a time."""
    big = tmp_path / "big.wav"
    with open(big, "wb") as handle:
        for index in range(24):
            handle.write(bytes([index]) * (1 << 20))
    small = tmp_path / "small.wav"
    small.write_bytes(b"tiny")
    pieces = []
    total = 0
    for piece in stream_zip([("a/big.wav", big), ("a/small.wav", small)]):
        pieces.append(len(piece))
        total += len(piece)
    assert max(pieces) <= CHUNK + 4096
    assert len(pieces) > 24 * (1 << 20) // CHUNK
    # And the whole is a valid archive with the exact bytes.
    data = b"".join(stream_zip([("a/big.wav", big), ("a/small.wav", small)]))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("a/small.wav") == b"tiny"
        assert archive.getinfo("a/big.wav").file_size == 24 << 20
    assert total == len(data)


def test_a_lalalai_job_shows_the_providers_task_ids(alice: User, pipeline, wav: Path) -> None:
    """So a user can match a job with the charges on their LALAL.AI account."""
    track = upload(alice.client, alice.csrf, wav)["id"]
    local = completed_job(pipeline, track, ("vocals",))
    paid = completed_job(pipeline, track, ("vocals",), provider_task_ids=("task-a1", "task-b2"))
    assert alice.client.get(f"/api/jobs/{paid}").json()["provider_task_ids"] == [
        "task-a1", "task-b2"]
    assert alice.client.get(f"/api/jobs/{local}").json()["provider_task_ids"] == []
    page = alice.client.get(f"/tracks/{track}").text
    assert page.count("data-provider-tasks") == 1
    # In the card's details line, not its header (issue 15: the player).
    card = page.split(f'data-job-card="{paid}"', 1)[1].split("</section>", 1)[0]
    head, rest = card.split("data-job-details", 1)
    assert "task-a1" not in head
    details = rest.split("</p>", 1)[0]
    assert "LALAL.AI tasks" in details and "task-a1, task-b2" in details


def _stem_id(alice: User, job_id: str, name: str) -> int:
    stems = alice.client.get(f"/api/jobs/{job_id}/stems").json()["stems"]
    return next(stem["id"] for stem in stems if stem["stem"] == name)


def test_waveform_peaks_of_a_stem(alice: User, bob: User, pipeline, job) -> None:
    """The streaming player draws these instead of decoding the stem itself."""
    _, job_id = job
    path = pipeline.uploads_dir / "stems" / job_id / "vocals.wav"
    # 10 s: silence, then a 0.5 square wave: the slices must say exactly that.
    rate = 44100
    signal = np.zeros((10 * rate, 2), dtype=np.float32)
    signal[5 * rate:] = 0.5 * np.sign(np.sin(np.arange(5 * rate) / 10.0))[:, None]
    sf.write(path, signal, rate, subtype="FLOAT")
    stem_id = _stem_id(alice, job_id, "vocals")

    response = alice.client.get(f"/api/stems/{stem_id}/peaks")
    assert response.status_code == 200, response.text
    peaks = response.json()
    assert peaks["stem_id"] == stem_id and abs(peaks["duration"] - 10.0) < 1e-6
    assert len(peaks["mins"]) == len(peaks["maxs"]) == 1600
    assert peaks["maxs"][:790] == [0.0] * 790 and peaks["mins"][:790] == [0.0] * 790
    assert set(peaks["maxs"][810:]) == {0.5} and set(peaks["mins"][810:]) == {-0.5}

    # Kept beside the stem; a newer stem file is read again.
    cache = path.with_name(".vocals.wav.peaks.json")
    assert cache.is_file()
    sf.write(path, signal * 0.5, rate, subtype="FLOAT")
    os.utime(path, (cache.stat().st_mtime + 5, cache.stat().st_mtime + 5))
    assert max(alice.client.get(f"/api/stems/{stem_id}/peaks").json()["maxs"]) == 0.25
    # A damaged cache is recomputed, not served.
    cache.write_text('{"version": 1, "mins": [')
    os.utime(cache, (path.stat().st_mtime + 5, path.stat().st_mtime + 5))
    assert max(alice.client.get(f"/api/stems/{stem_id}/peaks").json()["maxs"]) == 0.25

    assert bob.client.get(f"/api/stems/{stem_id}/peaks").status_code == 404
    assert alice.client.get("/api/stems/999999/peaks").status_code == 404


def test_peaks_of_a_damaged_stem_say_what_to_do(alice: User, pipeline, job) -> None:
    _, job_id = job
    (pipeline.uploads_dir / "stems" / job_id / "drums.wav").write_bytes(b"RIFF garbage")
    response = alice.client.get(f"/api/stems/{_stem_id(alice, job_id, 'drums')}/peaks")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "stem_damaged"
    assert error["message"] == "The stored drums stem cannot be read; run the separation again."


def test_player_streams_above_the_decode_limit(alice: User, app, job) -> None:
    track, _ = job
    assert 'data-mode="decode"' in alice.client.get(f"/tracks/{track}").text
    app.state.settings.player_decode_limit_minutes = 0.01  # 3 stems × 1 s > 0.6 s
    page = alice.client.get(f"/tracks/{track}").text
    assert 'data-mode="stream"' in page and 'data-peaks="/api/stems/' in page


def test_download_names_keep_utf8_and_a_readable_ascii_fallback(
    alice: User, pipeline, tmp_path: Path
) -> None:
    """Issue 15, defect 10: "Größe – ñandú" became "Gr__e _ _and_ ___ - stems.zip"
    for clients that read only the ASCII ``filename``."""
    from urllib.parse import unquote

    from tests.support.audio import write_audio

    song = write_audio(tmp_path / "Größe – ñandú.wav", seconds=1.0)
    track = upload(alice.client, alice.csrf, song)["id"]
    completed_job(pipeline, track, ("vocals",))
    zipped = alice.client.get(f"/export/stems/{track}")
    stem = alice.client.get(f"/api/tracks/{track}/stems").json()["stems"][0]
    single = alice.client.get(stem["download_url"])
    for response, name, ascii_name in (
        (zipped, "Größe – ñandú - stems.zip", "Grosse - nandu - stems.zip"),
        (single, "Größe – ñandú - vocals.wav", "Grosse - nandu - vocals.wav"),
    ):
        assert response.status_code == 200
        header = response.headers["content-disposition"]
        assert header.isascii()
        assert f'filename="{ascii_name}"' in header
        assert unquote(header.split("filename*=UTF-8''", 1)[1]) == name
