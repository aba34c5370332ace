"""The license key never shows; file names of any script reach the provider."""

from __future__ import annotations

import logging
import shutil
import traceback
from pathlib import Path

import pytest
from pydantic import SecretStr

from soundforge.engines.base import SeparationOptions
from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.engines.lalalai.errors import ProviderTaskError
from soundforge.errors import AuthError
from soundforge.filenames import ascii_fallback, content_disposition
from tests.support.fake_lalalai import FakeLalalai, parse_content_disposition


def test_the_key_never_appears_in_logs_errors_or_reprs(
    make_engine, fake: FakeLalalai, song: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, httpx and httpcore included
    engine = make_engine()
    # A run with every kind of retry, so every warning path logs something.
    fake.fail_next("upload", 1)
    fake.fail_next("check", 1)
    fake.throttle_next_checks(1)
    fake.drop_next("download", 1)
    fake.internal_error_next_starts(1)
    engine.separate(song, SeparationOptions(stems=("bass",)), None, None, tmp_path / "a")
    fake.fail_tasks(detail="could not process")
    with pytest.raises(ProviderTaskError) as task_error:
        engine.separate(song, SeparationOptions(stems=("bass",)), None, None, tmp_path / "b")
    wrong_key = "wrong-secret-key-0123456789"
    fake.echo_key_in_errors = True
    with pytest.raises(AuthError) as auth_error:
        make_engine(api_key=wrong_key).separate(
            song, SeparationOptions(stems=("bass",)), None, None, tmp_path / "c"
        )

    # The logs did record the retries: this test looks where a key could be.
    assert "try 1 of" in caplog.text and "rate-limited" in caplog.text
    assert "HTTP Request" in caplog.text  # httpx's own log lines are in too
    texts = [
        caplog.text,
        repr(engine), repr(engine.client), repr(engine.settings), str(engine.settings),
        repr(engine.client._http.auth),  # the one holder of the key
        str(task_error.value), repr(task_error.value),
        str(auth_error.value), "".join(traceback.format_exception(auth_error.value)),
        "".join(traceback.format_exception(task_error.value)),
    ]
    for text in texts:
        assert fake.key not in text
        assert wrong_key not in text
    # Download links may be on another host: the key is never sent there.
    assert fake.downloads
    assert all("x-license-key" not in request["headers"] for request in fake.downloads)


@pytest.mark.parametrize(
    "name",
    ["Café – Sigur Rós 日本語.wav", 'He said "hi"; bye.wav', "naïve\\track 🎸.wav", "plain.wav"],
)
def test_non_ascii_file_names_reach_the_provider_intact(
    engine, fake: FakeLalalai, song: Path, tmp_path: Path, name: str
) -> None:
    target = tmp_path / "in" / name
    target.parent.mkdir()
    shutil.copy(song, target)
    stems = engine.separate(target, SeparationOptions(stems=("bass",)), None, None,
                            tmp_path / "out").stems
    (source,) = fake.sources.values()
    assert source.name == name
    assert set(stems) == {"bass", "no_bass"}


def test_content_disposition_follows_rfc_6266() -> None:
    assert content_disposition("song.mp3") == 'attachment; filename="song.mp3"'
    assert content_disposition("Café.wav") == (
        "attachment; filename=\"Cafe.wav\"; filename*=UTF-8''Caf%C3%A9.wav"
    )
    header = content_disposition('日本 "x".wav')
    assert header.isascii()
    assert 'filename="RiBen \'x\'.wav"' in header  # transliterated, quotes made safe
    assert ascii_fallback("Ærø\tx.flac") == "Aero x.flac"
    for name in ("Café.wav", "日本語.flac", 'a"b\\c.wav', "x;y=z.mp3", "emoji 🎸.ogg"):
        assert parse_content_disposition(content_disposition(name)) == name


def test_client_repr_shows_no_key() -> None:
    client = LalalaiClient("http://127.0.0.1:9/api/v1", SecretStr("hunter2-key"))
    try:
        assert "hunter2-key" not in repr(client)
        assert client.base_url == "http://127.0.0.1:9/api/v1/"
        assert "hunter2-key" not in str(client._http.headers)
    finally:
        client.close()
