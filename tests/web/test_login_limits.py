"""The login rate limit cannot be escaped with forged headers, and one client
cannot lock out the people who share its address."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.services import free_port
from tests.web.conftest import User
from tests.web.helpers import PASSWORD, csrf_of

ROOT = Path(__file__).resolve().parents[2]
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@contextmanager
def serve(base: Path, **extra_env: str) -> Iterator[str]:
    """A real ``soundforge serve --no-worker`` (real Uvicorn) on a loopback port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDFORGE_")}
    env.update({"SOUNDFORGE_DATA_DIR": str(base / "data"), "SOUNDFORGE_PORT": str(port),
                "SOUNDFORGE_LOG_LEVEL": "WARNING", **extra_env})
    with open(base / "server.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "soundforge", "serve", "--no-worker"],
                                   env=env, stdout=log, stderr=log, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                if process.poll() is not None:
                    pytest.fail("serve exited:\n" + (base / "server.log").read_text()[-3000:])
                try:
                    if httpx.get(url + "/login", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def form_post(client: httpx.Client, path: str, data: dict, **headers: str) -> httpx.Response:
    token = _META.search(client.get(path).text)
    assert token
    return client.post(path, data={**data, "csrf_token": token.group(1)}, headers=headers)


def attempts_with_forged_addresses(url: str) -> list[int]:
    with httpx.Client(base_url=url) as client:
        assert form_post(client, "/signup", {"email": "real@example.com",
                                             "password": PASSWORD}).status_code == 303
    statuses = []
    with httpx.Client(base_url=url) as attacker:
        for number in range(7):
            response = form_post(attacker, "/login",
                                 {"email": "real@example.com", "password": "guess"},
                                 **{"X-Forwarded-For": f"203.0.113.{number + 1}"})
            statuses.append(response.status_code)
    return statuses


@pytest.mark.slow  # a real `soundforge serve`, and a real-strength password hash in it
def test_forged_forwarded_for_does_not_reset_the_limit(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        statuses = attempts_with_forged_addresses(url)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429], statuses


@pytest.mark.slow
def test_forwarded_for_is_believed_only_from_a_configured_proxy(tmp_path: Path) -> None:
    # The test client is the "proxy" here: trusted, its forwarded addresses count.
    with serve(tmp_path, SOUNDFORGE_TRUSTED_PROXIES="127.0.0.1") as url:
        assert attempts_with_forged_addresses(url) == [401] * 7


def test_made_up_emails_do_not_lock_out_known_accounts(
    app, alice: User, bob: User, anon: TestClient
) -> None:
    # Alice and Bob signed up from this address (the test client's); Carol exists
    # too but never signed in here.
    with TestClient(app, base_url="http://127.0.0.1") as carol_signup:
        token = csrf_of(carol_signup, "/signup")
        carol_signup.post("/signup", data={"email": "carol@example.com", "password": PASSWORD,
                                           "csrf_token": token})
    from soundforge.web.security import LoginLimiter

    limiter: LoginLimiter = app.state.login_limiter
    with app.state.db.transaction() as session:  # Carol's sign-in address is elsewhere
        from sqlalchemy import delete

        from soundforge.db.models import LoginKnownAddress
        session.execute(delete(LoginKnownAddress).where(
            LoginKnownAddress.key == limiter._keys("testclient", "carol@example.com")["account"]))
    token = csrf_of(anon)
    for number in range(30):
        response = anon.post("/login", data={"email": f"nobody{number}@example.com",
                                             "password": "guess", "csrf_token": token})
        assert response.status_code == 401
    # The sprayer itself is now stopped, for any account it does not know…
    refused = anon.post("/login", data={"email": "carol@example.com", "password": PASSWORD,
                                        "csrf_token": token})
    assert refused.status_code == 429
    # …but the people who sign in from this address still get in.
    for email in ("alice@example.com", "bob@example.com"):
        with TestClient(app, base_url="http://127.0.0.1") as neighbour:
            response = neighbour.post("/login", data={
                "email": email, "password": PASSWORD, "csrf_token": csrf_of(neighbour)},
                follow_redirects=False)
            assert response.status_code == 303, (email, response.status_code)
