"""The track library: import (checks, hash, tags, cover art), lookup, delete."""

from __future__ import annotations

import hashlib
import io

import pytest
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, TALB, TIT2, TPE1
from PIL import Image

from soundforge.errors import InputAudioError, NotFoundError
from soundforge.jobs.deletion import delete_track
from soundforge.library.files import resolve_upload
from soundforge.library.tracks import get_track, import_track, list_tracks
from tests.support.audio import write_audio


def _image(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(out, fmt)
    return out.getvalue()


def test_import_mp3_with_id3_tags_and_cover(pipeline, user, tmp_path):
    source = write_audio(tmp_path / "upload.mp3", seconds=2.0)
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Night Drive"))
    tags.add(TPE1(encoding=3, text="The Examples"))
    tags.add(TALB(encoding=3, text="Tests"))
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=_image("JPEG")))
    tags.save(source)
    expected_hash = hashlib.sha256(source.read_bytes()).hexdigest()

    track = import_track(pipeline, user, source, filename="night drive.mp3")

    assert (track.title, track.artist, track.album) == ("Night Drive", "The Examples", "Tests")
    assert track.content_hash == expected_hash
    assert track.duration == pytest.approx(2.0, abs=0.1)
    assert track.file_path == f"tracks/{track.id}/original.mp3"
    stored = resolve_upload(pipeline.settings, track.file_path)
    assert stored.read_bytes() == source.read_bytes()
    assert track.artwork_mime == "image/jpeg"
    cover = resolve_upload(pipeline.settings, track.artwork_path)
    assert Image.open(cover).size == (64, 48)
    assert source.exists()  # copied, not moved, unless asked


def test_import_flac_picture_is_scaled_and_title_falls_back_to_filename(
    pipeline, user, tmp_path
):
    source = write_audio(tmp_path / "x.flac", seconds=1.0)
    audio = FLAC(source)
    picture = Picture()
    picture.type = 3
    picture.mime = "image/png"
    picture.data = _image("PNG", (3000, 2000))
    audio.add_picture(picture)
    audio.save()

    track = import_track(pipeline, user, source, filename="my_home_demo.flac", move=True)

    assert track.title == "my home demo"
    assert track.artist is None
    assert track.artwork_mime == "image/png"
    with Image.open(resolve_upload(pipeline.settings, track.artwork_path)) as cover:
        assert max(cover.size) == 1200
    assert not source.exists()


def test_broken_cover_art_is_ignored(pipeline, user, tmp_path):
    source = write_audio(tmp_path / "x.mp3", seconds=1.0)
    tags = ID3()
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="", data=b"\xff\xd8 not a jpeg"))
    tags.save(source)
    track = import_track(pipeline, user, source)
    assert track.artwork_path is None


def test_non_audio_is_refused_with_the_probe_message_and_nothing_is_kept(
    pipeline, user, tmp_path
):
    fake = tmp_path / "tmpupload123"
    fake.write_text("this is a text file, not music\n" * 50)
    with pytest.raises(InputAudioError) as caught:
        import_track(pipeline, user, fake, filename="holiday.mp3")
    assert caught.value.code == "invalid_input"
    assert "holiday.mp3" in caught.value.message
    assert str(fake) not in caught.value.message  # the temp path means nothing to a user
    tracks_dir = pipeline.uploads_dir / "tracks"
    assert not tracks_dir.exists() or list(tracks_dir.iterdir()) == []
    with pipeline.db.session() as session:
        assert list_tracks(session, user) == []


def test_empty_file_is_refused(pipeline, user, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputAudioError, match="empty"):
        import_track(pipeline, user, empty)


def test_size_limit(pipeline, user, tmp_path, monkeypatch):
    source = write_audio(tmp_path / "big.wav", seconds=2.0)
    pipeline.settings.max_upload_mb = 0  # type: ignore[misc]
    with pytest.raises(InputAudioError, match="limit"):
        import_track(pipeline, user, source)


def test_tracks_are_private_to_their_owner(pipeline, user, make_track):
    from soundforge.db.accounts import create_user

    with pipeline.db.transaction() as session:
        other = create_user(session, "eve@example.com", "another secret")
    track = make_track()
    with pipeline.db.session() as session:
        assert get_track(session, user, track.id).id == track.id
        with pytest.raises(NotFoundError):
            get_track(session, other, track.id)
        assert list_tracks(session, other) == []
    with pytest.raises(NotFoundError):
        delete_track(pipeline, other, track.id)
    assert resolve_upload(pipeline.settings, track.file_path).is_file()


def test_list_search_and_order(pipeline, user, make_track):
    first, second = make_track(), make_track()
    with pipeline.db.session() as session:
        assert [t.id for t in list_tracks(session, user)] == [second.id, first.id]
        assert [t.id for t in list_tracks(session, user, order="oldest")] == [first.id, second.id]
        assert [t.id for t in list_tracks(session, user, search="song 1")] == [second.id]


def test_delete_removes_row_and_files(pipeline, user, make_track):
    track = make_track()
    folder = pipeline.uploads_dir / "tracks" / track.id
    assert folder.is_dir()
    delete_track(pipeline, user, track.id)
    assert not folder.exists()
    with pipeline.db.session() as session, pytest.raises(NotFoundError):
        get_track(session, user, track.id)


@pytest.mark.parametrize(
    "relative",
    ["../secret_key", "stems/../../secret_key", "/etc/passwd", "stems/%2e%2e/x", "", "stems/"],
)
def test_resolve_upload_refuses_escapes(pipeline, relative):
    (pipeline.uploads_dir / "stems").mkdir(parents=True, exist_ok=True)
    with pytest.raises(NotFoundError):
        resolve_upload(pipeline.settings, relative)


def test_resolve_upload_refuses_symlinks_out(pipeline, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    (pipeline.uploads_dir / "stems" / "job").mkdir(parents=True)
    (pipeline.uploads_dir / "stems" / "job" / "vocals.wav").symlink_to(outside)
    with pytest.raises(NotFoundError):
        resolve_upload(pipeline.settings, "stems/job/vocals.wav")
