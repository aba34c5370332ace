"""Fixtures for the web app: a fresh data directory, the app on the real
pipeline (SQLite + SQLite queue), test clients signed in as two users.

Every test gets its own data directory and database, but the database is not
migrated per test: it is a copy of one migrated once per session (migrations
are what tests/pipeline/test_db.py tests). Every app renders the same template
files with the same globals, so the apps share one template environment: each
template is compiled once per session, not once per test."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from fastapi.testclient import TestClient

from soundforge.config import Settings
from soundforge.db.migrate import upgrade_database
from soundforge.db.session import SQLITE_FILENAME
from soundforge.jobs.pipeline import Pipeline
from soundforge.web import create_app
from tests.support.audio import write_audio
from tests.support.fake_lalalai import FakeLalalai, fake_lalalai, fake_lalalai_server
from tests.web.helpers import signup, upload

__all__ = ["fake_lalalai", "fake_lalalai_server"]  # fixtures used by this package

MAX_UPLOAD_MB = 2


@pytest.fixture
def settings(tmp_path: Path, fake_lalalai: FakeLalalai) -> Settings:
    # LALAL.AI calls go to the fake server (the real one is never reachable).
    return Settings(data_dir=tmp_path / "data", max_upload_mb=MAX_UPLOAD_MB,
                    lalalai_url=fake_lalalai.url)


# What ``upgrade_database`` leaves in a new data directory: the database (with
# the installation's secret check recorded) and the secret it was made with.
MIGRATED_FILES = (SQLITE_FILENAME, "secret_key")


@pytest.fixture(scope="session")
def migrated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory as a first start leaves it, made once per session."""
    data_dir = tmp_path_factory.mktemp("migrated") / "data"
    with pytest.MonkeyPatch.context() as patch:
        # Made before any test's isolated environment: the developer's own
        # settings (a database URL, a secret) must not reach it either.
        for name in list(os.environ):
            if name.startswith("SOUNDFORGE_"):
                patch.delenv(name)
        upgrade_database(Settings(data_dir=data_dir))
    # Fold the write-ahead log into the file, so that the file alone is the database.
    connection = sqlite3.connect(data_dir / SQLITE_FILENAME)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return data_dir


def migrated_copy(template: Path, data_dir: Path) -> None:
    """Give ``data_dir`` its own copy of the migrated database and its secret."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in MIGRATED_FILES:
        shutil.copyfile(template / name, data_dir / name)


class _TemplateCache(jinja2.BytecodeCache):
    """Compiled templates in memory, keyed (by Jinja) by name and source checksum."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self.code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CACHE = _TemplateCache()
_FIRST_TEMPLATES: list = []


def share_compiled_templates(app) -> None:
    """Every test app renders through the first one's templates (the same files,
    globals and filters; Jinja reloads a template whose file changed), so each
    template is loaded once per session instead of once per test."""
    if not _FIRST_TEMPLATES:
        app.state.templates.env.bytecode_cache = TEMPLATE_CACHE
        _FIRST_TEMPLATES.append(app.state.templates)
    app.state.templates = _FIRST_TEMPLATES[0]


@pytest.fixture
def pipeline(settings: Settings, migrated_data_dir: Path) -> Iterator[Pipeline]:
    migrated_copy(migrated_data_dir, settings.data_dir)
    with Pipeline(settings) as opened:
        yield opened


@pytest.fixture
def app(settings: Settings, pipeline: Pipeline):
    created = create_app(settings, pipeline=pipeline)
    share_compiled_templates(created)
    return created


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


class SharedSite:
    """One app, one signed-in user and one uploaded track for a whole module."""

    def __init__(self, pipeline: Pipeline, app, alice: User, track: str) -> None:
        self.pipeline = pipeline
        self.app = app
        self.alice = alice
        self.track = track


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory: pytest.TempPathFactory, migrated_data_dir: Path,
                fake_lalalai_server: FakeLalalai) -> Iterator[SharedSite]:
    """For a module's many one-request cases that write nothing (each checks
    that it wrote nothing): the per-test app, signed-in Alice and her track,
    made once. Built before any test's isolated environment, so its settings
    are read under the same isolation (tests/conftest.py's ``isolated_env``)."""
    base = tmp_path_factory.mktemp("shared-site")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("SOUNDFORGE_") or name in (
                "LALALAI_API_KEY", "SYSTEM_LALALAI_ACTIVATION_KEY",
            ):
                patch.delenv(name)
        patch.setenv("SOUNDFORGE_MODEL_CACHE", str(base / "model-cache"))
        patch.setenv("SOUNDFORGE_THREADS", "1")
        patch.setenv("HF_HUB_OFFLINE", "1")
        settings = Settings(data_dir=base / "data", max_upload_mb=MAX_UPLOAD_MB,
                            lalalai_url=fake_lalalai_server.url)
    migrated_copy(migrated_data_dir, settings.data_dir)
    with Pipeline(settings) as pipeline:
        app = create_app(settings, pipeline=pipeline)
        share_compiled_templates(app)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            alice = User(client, "alice@example.com")
            track = upload(client, alice.csrf, write_audio(base / "My Song.wav", seconds=2.0))
            yield SharedSite(pipeline, app, alice, track["id"])


# --- the browser tests ----------------------------------------------------------------
# They all run on one pytest worker (xdist group "browser"), so these session
# fixtures are started once: one Chromium, one server for the tests that need
# nothing special of it. A test that needs a server configured otherwise (no
# worker, another model repository, streaming players) starts its own.


_CHROMIUM: dict[str, object] = {}


@pytest.fixture
def browser() -> object:
    """Chromium, through Playwright, started by the first browser test and
    shared by those that follow it; each test opens its own context (cookies,
    storage, viewport), so tests share nothing but the process."""
    if not _CHROMIUM:
        from playwright.sync_api import sync_playwright

        from tests.web.browser_support import CHROMIUM_ARGS, ensure_chromium

        executable = ensure_chromium()
        playwright = sync_playwright().start()
        _CHROMIUM["playwright"] = playwright
        _CHROMIUM["instance"] = playwright.chromium.launch(executable_path=executable,
                                                           args=CHROMIUM_ARGS)
    return _CHROMIUM["instance"]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop Chromium after the last of a run of browser tests: Playwright's sync
    API keeps an event loop running in this thread while it is started, and
    the tests after it on the same worker call asyncio.run()."""
    if _CHROMIUM and (nextitem is None or nextitem.get_closest_marker("browser") is None):
        instance, playwright = _CHROMIUM.pop("instance"), _CHROMIUM.pop("playwright")
        try:
            instance.close()  # type: ignore[attr-defined]
        finally:
            playwright.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory,
           fake_lalalai_server: FakeLalalai) -> Iterator[str]:
    """The product with an embedded worker and a tiny htdemucs, LALAL.AI faked."""
    from tests.web.browser_support import serve

    yield from serve(tmp_path_factory.mktemp("browser"),
                     SOUNDFORGE_LALALAI_URL=fake_lalalai_server.url,
                     SOUNDFORGE_LALALAI_POLL_INTERVAL="0.2")


@pytest.fixture(scope="session")
def models_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A worker and a repository of tiny htdemucs, htdemucs_ft, htdemucs_6s and
    mel_roformer_karaoke: ensemble_six_stems and the karaoke RoFormer are ready;
    the presets with mdx_extra and the other RoFormers are not. Its player
    streams every separation (decode limit 0 minutes) instead of decoding it in
    the browser; ``server``'s decodes them."""
    from tests.support.tiny_models import build_tiny_repo
    from tests.web.browser_support import serve

    base = tmp_path_factory.mktemp("browser-models")
    repo = build_tiny_repo(base / "repo", names=("htdemucs", "htdemucs_ft", "htdemucs_6s",
                                                 "mel_roformer_karaoke"))
    yield from serve(base, SOUNDFORGE_MODEL_REPO=str(repo),
                     SOUNDFORGE_PLAYER_DECODE_LIMIT_MINUTES="0")
