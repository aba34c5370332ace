"""The data layer: migrations match the models, on SQLite and PostgreSQL; secrets at rest."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from soundforge.config import Settings
from soundforge.db import Database, ProcessingJob, Stem, Track, User, upgrade_database
from soundforge.db.accounts import (
    authenticate,
    create_api_token,
    create_user,
    get_lalalai_key,
    set_lalalai_key,
    user_for_api_token,
)
from soundforge.db.base import Base
from soundforge.db.migrate import current_revision, head_revision
from soundforge.db.security import SecretError, load_secret_key
from soundforge.errors import InvalidOptionError


def _schema_diff(database: Database) -> list[object]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def _check_migrated_schema(settings: Settings) -> None:
    database = Database(settings)
    try:
        upgrade_database(settings, database)
        assert current_revision(database.engine) == head_revision()
        assert _schema_diff(database) == []
        tables = set(inspect(database.engine).get_table_names())
        assert {"users", "user_settings", "api_tokens", "tracks", "processing_jobs",
                "stems"} <= tables
        upgrade_database(settings, database)  # a second start changes nothing
        assert current_revision(database.engine) == head_revision()
    finally:
        database.dispose()


def test_sqlite_schema_from_migrations_matches_models(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    _check_migrated_schema(settings)
    assert (tmp_path / "data" / "soundforge.db").is_file()


@pytest.mark.services
def test_postgres_schema_from_migrations_matches_models(postgres_url, tmp_path):
    _check_migrated_schema(Settings(data_dir=tmp_path, database_url=postgres_url))


def test_concurrent_starts_migrate_once(tmp_path):
    """Web and workers start together: each calls upgrade_database at once."""
    settings = Settings(data_dir=tmp_path / "data")
    errors: list[BaseException] = []

    def start() -> None:
        try:
            upgrade_database(settings)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    database = Database(settings)
    assert current_revision(database.engine) == head_revision()
    database.dispose()


def test_sqlite_pragmas_wal_and_foreign_keys(tmp_path):
    settings = Settings(data_dir=tmp_path)
    database = Database(settings)
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    database.dispose()


def test_postgres_url_uses_psycopg3():
    from soundforge.db.session import database_url

    assert database_url(Settings(database_url="postgresql://u@h/db")).startswith(
        "postgresql+psycopg://"
    )
    assert database_url(Settings(database_url="postgres://u@h/db")).startswith(
        "postgresql+psycopg://"
    )


def _exercise_accounts_and_cascades(settings: Settings) -> None:
    database = Database(settings)
    upgrade_database(settings, database)
    with database.transaction() as session:
        user = create_user(session, "Ada@Example.com", "correct horse battery")
        set_lalalai_key(settings, user.settings, "lalal-secret-key-1234")
        _, raw_token = create_api_token(session, user, "scripts")
        track = Track(user_id=user.id, title="t", original_filename="t.wav",
                      file_path="tracks/x/original.wav", content_hash="0" * 64)
        session.add(track)
        session.flush()
        job = ProcessingJob(user_id=user.id, track_id=track.id, engine="local",
                            model="htdemucs", options={}, options_key="k",
                            content_hash="0" * 64, provider_task_ids=[])
        session.add(job)
        session.flush()
        session.add(Stem(job_id=job.id, track_id=track.id, stem_type="vocals",
                         file_path=f"stems/{job.id}/vocals.wav", format="wav"))
        user_id, track_id = user.id, track.id

    with database.transaction() as session:
        # Emails are case-insensitive; a wrong password and an unknown user look alike.
        assert authenticate(session, "ada@example.com", "correct horse battery") is not None
        assert authenticate(session, "ada@example.com", "wrong password!") is None
        assert authenticate(session, "bob@example.com", "correct horse battery") is None
        assert user_for_api_token(session, raw_token).id == user_id
        assert user_for_api_token(session, raw_token + "x") is None
        stored = session.get(User, user_id)
        # Encrypted at rest: the database never holds the key itself.
        assert "lalal-secret-key-1234" not in stored.settings.lalalai_key_encrypted
        assert stored.settings.lalalai_key_last4 == "1234"
        assert get_lalalai_key(settings, stored.settings) == "lalal-secret-key-1234"
        assert stored.created_at.tzinfo is not None
        with pytest.raises(InvalidOptionError, match="already exists"):
            create_user(session, "ADA@example.com", "another password")

    with database.transaction() as session:
        session.delete(session.get(Track, track_id))
    with database.session() as session:
        assert session.scalar(select(ProcessingJob.id)) is None
        assert session.scalar(select(Stem.id)) is None
        assert session.get(User, user_id) is not None
    database.dispose()


def test_accounts_secrets_and_cascades_sqlite(tmp_path):
    _exercise_accounts_and_cascades(Settings(data_dir=tmp_path))


@pytest.mark.services
def test_accounts_secrets_and_cascades_postgres(tmp_path, postgres_url):
    _exercise_accounts_and_cascades(Settings(data_dir=tmp_path, database_url=postgres_url))


def test_secret_key_is_generated_once_and_reused(tmp_path):
    settings = Settings(data_dir=tmp_path)
    first = load_secret_key(settings)
    assert len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert load_secret_key(Settings(data_dir=tmp_path)) == first
    assert load_secret_key(Settings(data_dir=tmp_path, secret_key="explicit")) == "explicit"


def test_key_encrypted_under_another_secret_cannot_be_read(tmp_path):
    from soundforge.db.models import UserSettings

    row = UserSettings()
    set_lalalai_key(Settings(data_dir=tmp_path, secret_key="one"), row, "k-123456")
    with pytest.raises(SecretError, match="Enter the key again"):
        get_lalalai_key(Settings(data_dir=tmp_path, secret_key="two"), row)


def test_naive_datetimes_are_refused(tmp_path):
    settings = Settings(data_dir=tmp_path)
    database = Database(settings)
    upgrade_database(settings, database)
    with pytest.raises(Exception, match="naive datetime"), database.transaction() as session:
        session.add(User(email="x@y.z", password_hash="h", created_at=datetime(2020, 1, 1)))
    with database.transaction() as session:
        session.add(User(email="x@y.z", password_hash="h",
                         created_at=datetime(2020, 1, 1, tzinfo=UTC)))
    with database.session() as session:
        assert session.scalar(select(User.created_at)) == datetime(2020, 1, 1, tzinfo=UTC)
    database.dispose()
