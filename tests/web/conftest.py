"""Fixtures for the web app: a fresh data directory, the app on the real
pipeline (SQLite + SQLite queue), test clients signed in as two users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soundforge.config import Settings
from soundforge.db.migrate import upgrade_database
from soundforge.jobs.pipeline import Pipeline
from soundforge.web import create_app
from tests.support.audio import write_audio
from tests.support.fake_lalalai import FakeLalalai, fake_lalalai, fake_lalalai_server
from tests.web.helpers import signup

__all__ = ["fake_lalalai", "fake_lalalai_server"]  # fixtures used by this package

MAX_UPLOAD_MB = 2


@pytest.fixture
def settings(tmp_path: Path, fake_lalalai: FakeLalalai) -> Settings:
    # LALAL.AI calls go to the fake server (the real one is never reachable).
    return Settings(data_dir=tmp_path / "data", max_upload_mb=MAX_UPLOAD_MB,
                    lalalai_url=fake_lalalai.url)


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    upgrade_database(settings)
    with Pipeline(settings) as opened:
        yield opened


@pytest.fixture
def app(settings: Settings, pipeline: Pipeline):
    return create_app(settings, pipeline=pipeline)


@pytest.fixture
def anon(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


class User:
    def __init__(self, client: TestClient, email: str) -> None:
        self.client = client
        self.email = email
        self.csrf = signup(client, email)

    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, "Accept": "application/json"}


@pytest.fixture
def alice(app) -> Iterator[User]:
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield User(client, "alice@example.com")


@pytest.fixture
def bob(app) -> Iterator[User]:
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield User(client, "bob@example.com")


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_audio(tmp_path / "My Song.wav", seconds=2.0)
