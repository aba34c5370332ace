"""Sign-up and taken addresses: an admin-controlled sign-up mode, and a limit
on how fast one client can ask which emails have accounts."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from soundforge.config import Settings
from soundforge.db.migrate import upgrade_database
from soundforge.jobs.pipeline import Pipeline
from soundforge.web import create_app
from tests.support.cli import CliRun, run_cli
from tests.web.conftest import User
from tests.web.helpers import PASSWORD, csrf_of


def sign_up(client: TestClient, email: str) -> int:
    token = csrf_of(client, "/signup")
    return client.post("/signup", data={"email": email, "password": PASSWORD,
                                        "csrf_token": token},
                       follow_redirects=False).status_code


def test_probing_for_taken_emails_is_rate_limited(app, alice: User) -> None:
    with TestClient(app, base_url="http://127.0.0.1") as prober:
        answers = [sign_up(prober, "alice@example.com") for _ in range(6)]
        assert answers[:5] == [422] * 5
        assert answers[5] == 429
        # New, free addresses are not what is limited … but this client is paused now.
        assert sign_up(prober, "new@example.com") == 429


def test_closed_signup_allows_only_the_first_account(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", signup="closed")
    upgrade_database(settings)
    with Pipeline(settings) as pipeline, TestClient(create_app(settings, pipeline=pipeline),
                                                    base_url="http://127.0.0.1") as client:
        assert sign_up(client, "admin@example.com") == 303  # the very first one
        with TestClient(create_app(settings, pipeline=pipeline),
                        base_url="http://127.0.0.1") as stranger:
            page = stranger.get("/signup")
            assert page.status_code == 403 and "Sign-up is closed" in page.text
            assert 'action="/signup"' not in page.text
            refused = stranger.post("/signup", data={
                "email": "x@example.com", "password": PASSWORD,
                "csrf_token": csrf_of(stranger, "/login")})
            assert refused.status_code == 403 and "soundforge users add" in refused.text


def test_the_administrator_adds_accounts_from_the_command_line(tmp_path: Path) -> None:
    env = {"SOUNDFORGE_DATA_DIR": str(tmp_path / "data"), "SOUNDFORGE_SIGNUP": "closed"}

    def add(email: str, password: str) -> CliRun:
        return run_cli("users", "add", email, "--password-stdin", env=env,
                       input=password + "\n")

    assert add("Bob@Example.com", PASSWORD).returncode == 0
    again = add("bob@example.com", PASSWORD)
    assert again.returncode == 1 and "already exists" in again.stderr
    short = add("carol@example.com", "short")
    assert short.returncode == 1 and "at least 8" in short.stderr
    settings = Settings(data_dir=tmp_path / "data")
    with Pipeline(settings) as pipeline, TestClient(create_app(settings, pipeline=pipeline),
                                                    base_url="http://127.0.0.1") as client:
        response = client.post("/login", data={"email": "bob@example.com", "password": PASSWORD,
                                               "csrf_token": csrf_of(client)},
                               follow_redirects=False)
        assert response.status_code == 303
