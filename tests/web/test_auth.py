"""Accounts: sign up, log in, log out, sessions, CSRF, rate limits, API tokens."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from soundforge.db import ApiToken, User, security
from soundforge.db.models import LoginFailure
from soundforge.jobs.pipeline import Pipeline
from soundforge.web.app import create_app
from tests.web.conftest import User as WebUser
from tests.web.helpers import PASSWORD, csrf_of


def test_signup_starts_a_session_with_safe_cookie(anon: TestClient, pipeline) -> None:
    token = csrf_of(anon, "/signup")
    response = anon.post("/signup", data={"email": "New@Example.com", "password": PASSWORD,
                                          "display_name": "Nia", "csrf_token": token},
                         follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = anon.get("/")
    assert page.status_code == 200 and "Nia" in page.text
    with pipeline.db.session() as session:
        user = session.scalar(select(User).where(User.email == "new@example.com"))
        assert user is not None
        # argon2id hash, never the password itself
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


STRONG = "$argon2id$v=19$m=65536,t=3,p=4$"  # RFC 9106, low-memory profile


def test_a_deployment_hashes_with_rfc_9106_parameters() -> None:
    """The suite hashes with argon2's cheapest parameters (tests/conftest.py); a
    process that does not ask for them, as every deployment, uses RFC 9106's."""
    made = subprocess.run(
        [sys.executable, "-c",
         "from soundforge.db.security import hash_password; print(hash_password('x'))"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert made.startswith(STRONG), made


def test_a_weaker_hash_is_upgraded_at_login(anon: TestClient, alice: WebUser,
                                            pipeline) -> None:
    def stored_hash() -> str:
        with pipeline.db.session() as session:
            user = session.scalar(select(User).where(User.email == alice.email))
            assert user is not None
            return user.password_hash

    assert not stored_hash().startswith(STRONG)  # made by the suite's cheap hasher
    previous = security.use_password_hasher(
        PasswordHasher.from_parameters(security.PASSWORD_PARAMETERS))
    try:
        token = csrf_of(anon)
        response = anon.post("/login", data={"email": alice.email, "password": PASSWORD,
                                             "csrf_token": token}, follow_redirects=False)
        assert response.status_code == 303
    finally:
        security.use_password_hasher(previous)
    assert stored_hash().startswith(STRONG)


def test_signup_refuses_duplicate_email_and_short_password(anon: TestClient,
                                                           alice: WebUser) -> None:
    token = csrf_of(anon, "/signup")
    taken = anon.post("/signup", data={"email": "ALICE@example.com", "password": PASSWORD,
                                       "csrf_token": token})
    assert taken.status_code == 422 and "already exists" in taken.text
    short = anon.post("/signup", data={"email": "x@example.com", "password": "short",
                                       "csrf_token": token})
    assert short.status_code == 422 and "at least 8 characters" in short.text


def test_login_logout_and_next(anon: TestClient, alice: WebUser) -> None:
    assert anon.get("/settings", follow_redirects=False).headers["location"] == (
        "/login?next=%2Fsettings"
    )
    token = csrf_of(anon)
    wrong = anon.post("/login", data={"email": "alice@example.com", "password": "nope-nope",
                                      "csrf_token": token})
    assert wrong.status_code == 401 and "do not match" in wrong.text
    good = anon.post("/login", data={"email": "alice@example.com", "password": PASSWORD,
                                     "next": "/settings", "csrf_token": token},
                     follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/settings"
    assert anon.get("/settings").status_code == 200
    token = csrf_of(anon, "/settings")
    out = anon.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.headers["location"] == "/login"
    assert anon.get("/settings", follow_redirects=False).status_code == 303


def test_login_next_cannot_leave_the_site(anon: TestClient, alice: WebUser) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        token = csrf_of(anon)
        response = anon.post("/login", data={"email": "alice@example.com", "password": PASSWORD,
                                             "next": target, "csrf_token": token},
                             follow_redirects=False)
        assert response.headers["location"] == "/", target
        anon.cookies.clear()


def test_login_attempts_are_rate_limited(anon: TestClient, alice: WebUser) -> None:
    token = csrf_of(anon)
    for _ in range(5):
        response = anon.post("/login", data={"email": "alice@example.com",
                                             "password": "wrong-password", "csrf_token": token})
        assert response.status_code == 401
    # Even the right password is refused now, and the page says for how long.
    blocked = anon.post("/login", data={"email": "alice@example.com", "password": PASSWORD,
                                        "csrf_token": token})
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.text
    assert int(blocked.headers["retry-after"]) > 0


def test_the_login_limit_is_shared_by_every_web_process(
    anon: TestClient, alice: WebUser, settings, pipeline
) -> None:
    """Several web processes on one database must not multiply the attempts."""
    def attempt(client: TestClient, password: str = "wrong-password") -> int:
        return client.post("/login", data={"email": "alice@example.com", "password": password,
                                           "csrf_token": csrf_of(client)}).status_code

    with Pipeline(settings) as other_pipeline:
        other_app = create_app(settings, pipeline=other_pipeline)
        with TestClient(other_app, base_url="http://127.0.0.1") as other:
            assert [attempt(anon) for _ in range(3)] == [401] * 3
            assert [attempt(other) for _ in range(2)] == [401] * 2
            assert attempt(anon, PASSWORD) == 429
            assert attempt(other, PASSWORD) == 429
            with pipeline.db.session() as session:
                keys = session.scalars(select(LoginFailure.key)).all()
            assert len(keys) == 10 and not any("alice" in key for key in keys)

            # Fifteen minutes later the window is empty again, in every process.
            later = time.time() + 901
            for app in (anon.app, other_app):
                app.state.login_limiter.clock = lambda: later  # type: ignore[attr-defined]
            assert attempt(other, PASSWORD) == 200
            with pipeline.db.session() as session:
                assert session.scalars(select(LoginFailure.key)).all() == [], \
                    "expired failures and the account's own are removed"


def test_forged_csrf_is_refused_everywhere(alice: WebUser, pipeline) -> None:
    client = alice.client
    forms = ["/settings/cloud", "/settings/demucs", "/settings/tokens", "/logout",
             "/tracks/upload"]
    for path in forms:
        for data in ({"csrf_token": "forged"}, {}):
            response = client.post(path, data={**data, "engine": "lalalai",
                                               "demucs_model": "htdemucs", "name": "x"})
            assert response.status_code == 403, path
            assert "did not come from this site" in response.text
    # JSON calls with the session cookie need the header too.
    api = client.patch("/api/settings", json={"engine": "lalalai"},
                       headers={"X-CSRF-Token": "forged"})
    assert api.status_code == 403 and api.json()["error"]["code"] == "csrf_failed"
    no_header = client.patch("/api/settings", json={"engine": "lalalai"})
    assert no_header.status_code == 403
    with pipeline.db.session() as session:
        assert session.scalar(select(ApiToken)) is None
    assert client.get("/api/settings").json()["engine"] == "local"
    # A CSRF token of another session does not work either.
    login_token = csrf_of(TestClient(client.app, base_url="http://127.0.0.1"))
    assert client.post("/settings/tokens", data={"csrf_token": login_token}).status_code == 403


def test_api_tokens_shown_once_then_used_and_revoked(alice: WebUser, bob: WebUser,
                                                     pipeline) -> None:
    created = alice.client.post("/settings/tokens", data={"name": "batch",
                                                          "csrf_token": alice.csrf})
    assert created.status_code == 201
    raw = re.search(r"(sf_[A-Za-z0-9_\-]{40,})", created.text).group(1)
    assert raw not in alice.client.get("/settings").text  # shown once only
    with pipeline.db.session() as session:
        token = session.scalar(select(ApiToken))
        assert token.token_hash != raw and raw not in token.token_hash
        token_id = token.id
    bare = TestClient(alice.client.app, base_url="http://127.0.0.1")
    me = bare.get("/api/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 200 and me.json()["email"] == "alice@example.com"
    # A token needs no CSRF header: it is not a cookie.
    patched = bare.patch("/api/settings", json={"output_format": "flac"},
                         headers={"Authorization": f"Bearer {raw}"})
    assert patched.status_code == 200 and patched.json()["output_format"] == "flac"
    # Bob cannot revoke Alice's token.
    assert bob.client.post(f"/settings/tokens/{token_id}/delete",
                           data={"csrf_token": bob.csrf}).status_code == 404
    revoked = alice.client.post(f"/settings/tokens/{token_id}/delete",
                                data={"csrf_token": alice.csrf}, follow_redirects=False)
    assert revoked.status_code == 303
    gone = bare.get("/api/me", headers={"Authorization": f"Bearer {raw}"})
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "unauthenticated"
    bad = bare.get("/api/me", headers={"Authorization": "Bearer sf_not-a-token"})
    assert bad.status_code == 401


def test_password_change_ends_other_sessions(alice: WebUser, pipeline) -> None:
    from soundforge.db.accounts import set_password

    assert alice.client.get("/settings").status_code == 200
    with pipeline.db.transaction() as session:
        user = session.scalar(select(User).where(User.email == "alice@example.com"))
        set_password(session, user, "another long password")
    assert alice.client.get("/settings", follow_redirects=False).status_code == 303
