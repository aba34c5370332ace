"""The library: uploads (one or many, refused when not audio or too large),
cards with art, search and sort, delete."""

from __future__ import annotations

import io
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from tests.support.audio import write_audio
from tests.web.conftest import MAX_UPLOAD_MB, User
from tests.web.helpers import upload


def test_upload_with_progress_endpoint_answers_json(alice: User, wav: Path, pipeline) -> None:
    track = upload(alice.client, alice.csrf, wav)
    assert track["title"] == "My Song"
    assert abs(track["duration"] - 2.0) < 0.05
    stored = pipeline.uploads_dir / "tracks" / track["id"]
    assert any(p.name.startswith("original") for p in stored.iterdir())
    page = alice.client.get("/").text
    assert "My Song" in page and "0:02" in page and "Unknown artist" in page


def test_upload_many_with_the_plain_form(alice: User, tmp_path: Path) -> None:
    one = write_audio(tmp_path / "One.wav", seconds=1.0)
    two = write_audio(tmp_path / "Two.flac", seconds=1.0)
    with open(one, "rb") as a, open(two, "rb") as b:
        response = alice.client.post(
            "/tracks/upload",
            data={"csrf_token": alice.csrf},
            files=[("files", ("One.wav", a, "audio/wav")),
                   ("files", ("Two.flac", b, "audio/flac"))],
            follow_redirects=False,
        )
    assert response.status_code == 303
    page = alice.client.get("/").text
    assert "Added “One”, “Two” to your library." in page or "Added “Two”, “One”" in page
    titles = [t["title"] for t in alice.client.get("/api/tracks").json()["tracks"]]
    assert sorted(titles) == ["One", "Two"]


def test_non_audio_is_refused_with_a_clear_message(alice: User, tmp_path: Path,
                                                   pipeline) -> None:
    fake = tmp_path / "holiday.mp3"
    fake.write_text("this is a text file, not music\n" * 50)
    with open(fake, "rb") as handle:
        response = alice.client.post("/tracks/upload", files={"files": ("holiday.mp3", handle)},
                                     headers=alice.headers())
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "holiday.mp3" in error["message"] and "audio" in error["message"]
    assert alice.client.get("/api/tracks").json()["tracks"] == []
    # Nothing of it stays on disk.
    leftovers = [p for p in pipeline.uploads_dir.rglob("*") if p.is_file()]
    assert leftovers == []
    # The same through the plain form: the message is shown on the page.
    with open(fake, "rb") as handle:
        page = alice.client.post("/tracks/upload", files={"files": ("holiday.mp3", handle)},
                                 data={"csrf_token": alice.csrf})
    assert page.status_code == 200 and "holiday.mp3" in page.text


def test_oversized_upload_is_refused_before_it_is_read(alice: User, tmp_path: Path,
                                                        pipeline) -> None:
    big = write_audio(tmp_path / "long.wav", seconds=MAX_UPLOAD_MB * 8.0)
    assert big.stat().st_size > MAX_UPLOAD_MB * 1024 * 1024
    with open(big, "rb") as handle:
        response = alice.client.post("/tracks/upload", files={"files": ("long.wav", handle)},
                                     headers=alice.headers())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert f"{MAX_UPLOAD_MB} MB" in response.json()["error"]["message"]
    with open(big, "rb") as handle:
        api = alice.client.post("/api/tracks", files={"files": ("long.wav", handle)},
                                headers=alice.headers())
    assert api.status_code == 413
    assert alice.client.get("/api/tracks").json()["tracks"] == []


def test_oversized_chunked_upload_is_cut_off(alice: User) -> None:
    """No Content-Length: the body is counted as it arrives and stopped."""
    sent = 0

    def body():
        nonlocal sent
        yield b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.wav\"\r\n\r\n"
        for _ in range(MAX_UPLOAD_MB * 4 + 8):
            sent += 1
            yield b"\0" * (256 * 1024)
        yield b"\r\n--b--\r\n"

    response = alice.client.post(
        "/tracks/upload", content=body(),
        headers={**alice.headers(), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_album_art_from_tags_else_a_placeholder(alice: User, tmp_path: Path, wav: Path) -> None:
    from mutagen.id3 import APIC, ID3, TIT2, TPE1

    song = write_audio(tmp_path / "tagged.mp3", seconds=1.0)
    cover = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 90)).save(cover, format="PNG")
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Tagged Title"))
    tags.add(TPE1(encoding=3, text="Some Artist"))
    tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=cover.getvalue()))
    tags.save(str(song))
    tagged = upload(alice.client, alice.csrf, song)
    assert tagged["title"] == "Tagged Title" and tagged["artist"] == "Some Artist"
    assert tagged["has_artwork"]
    art = alice.client.get(tagged["artwork_url"])
    assert art.status_code == 200 and art.headers["content-type"].startswith("image/")
    assert "svg" not in art.headers["content-type"]
    Image.open(io.BytesIO(art.content)).verify()

    plain = upload(alice.client, alice.csrf, wav)
    placeholder = alice.client.get(plain["artwork_url"])
    assert placeholder.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in placeholder.text and ">MS<" in placeholder.text  # "My Song"


def test_search_and_sort(alice: User, tmp_path: Path) -> None:
    for name in ("Zebra Crossing", "Alpha Centauri", "Middle Ground"):
        upload(alice.client, alice.csrf, write_audio(tmp_path / f"{name}.wav", seconds=0.5))
    page = alice.client.get("/", params={"q": "alp"}).text
    assert "Alpha Centauri" in page and "Zebra Crossing" not in page
    assert "matching “alp”" in page
    page = alice.client.get("/", params={"sort": "title"}).text
    assert page.index("Alpha Centauri") < page.index("Middle Ground") < page.index("Zebra")
    newest = alice.client.get("/").text
    assert newest.index("Middle Ground") < newest.index("Alpha Centauri")
    api = alice.client.get("/api/tracks", params={"sort": "title", "q": "e"}).json()["tracks"]
    assert [t["title"] for t in api] == ["Alpha Centauri", "Middle Ground", "Zebra Crossing"]
    bad = alice.client.get("/api/tracks", params={"sort": "loudness"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_option"
    # An unknown sort on the page falls back to the default instead of failing.
    assert alice.client.get("/", params={"sort": "bogus"}).status_code == 200


def test_delete_track_removes_files(alice: User, wav: Path, pipeline) -> None:
    track = upload(alice.client, alice.csrf, wav)
    folder = pipeline.uploads_dir / "tracks" / track["id"]
    assert folder.exists()
    response = alice.client.post(f"/tracks/{track['id']}/delete",
                                 data={"csrf_token": alice.csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert not folder.exists()
    assert alice.client.get(f"/tracks/{track['id']}").status_code == 404
    second = upload(alice.client, alice.csrf, wav)
    assert alice.client.delete(f"/api/tracks/{second['id']}",
                               headers=alice.headers()).status_code == 204
    assert alice.client.get("/api/tracks").json()["tracks"] == []


def test_api_upload_with_a_token(alice: User, wav: Path, tmp_path: Path) -> None:
    created = alice.client.post("/settings/tokens", data={"name": "cli",
                                                          "csrf_token": alice.csrf})
    import re

    raw = re.search(r"(sf_[A-Za-z0-9_\-]{40,})", created.text).group(1)
    script = TestClient(alice.client.app, base_url="http://127.0.0.1")
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    with open(wav, "rb") as good_file, open(bad, "rb") as bad_file:
        response = script.post(
            "/api/tracks",
            files=[("files", ("My Song.wav", good_file)), ("files", ("notes.wav", bad_file))],
            headers={"Authorization": f"Bearer {raw}"},
        )
    assert response.status_code == 201
    body = response.json()
    assert [t["title"] for t in body["tracks"]] == ["My Song"]
    assert body["errors"][0]["filename"] == "notes.wav"
    assert body["errors"][0]["code"] == "invalid_input"
    empty = script.post("/api/tracks", headers={"Authorization": f"Bearer {raw}"},
                        files={"other": ("x", b"")})
    assert empty.status_code == 422


def _with_riff_info(path: Path, **tags: str) -> Path:
    """Append a RIFF ``LIST``/``INFO`` chunk (what most WAV taggers write:
    INAM title, IART artist, IPRD album) and fix the RIFF size."""
    import struct

    ids = {"title": b"INAM", "artist": b"IART", "album": b"IPRD"}
    body = b"INFO"
    for name, text in tags.items():
        value = text.encode("utf-8") + b"\0"
        if len(value) % 2:
            value += b"\0"  # chunks are word-aligned
        body += ids[name] + struct.pack("<I", len(value)) + value
    data = bytearray(path.read_bytes())
    data += b"LIST" + struct.pack("<I", len(body)) + body
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    return path


def test_riff_info_tags_name_the_track(alice: User, tmp_path: Path) -> None:
    """Issue 15, defect 7: a WAV's RIFF INFO title and artist were ignored."""
    song = _with_riff_info(write_audio(tmp_path / "take_03_final.wav", seconds=1.0),
                           title="Größe – ñandú", artist="Los Tagueros", album="Cinta")
    track = upload(alice.client, alice.csrf, song)
    assert (track["title"], track["artist"], track["album"]) == (
        "Größe – ñandú", "Los Tagueros", "Cinta")
    card = alice.client.get("/").text
    assert "Los Tagueros" in card and "Unknown artist" not in card
