"""Sessions live on the server: logout, a password change and "log out
everywhere" revoke them; and strangers are refused before their body is read."""

from __future__ import annotations

import asyncio
import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from soundforge.db.models import WebSession
from tests.web.conftest import User
from tests.web.helpers import PASSWORD, csrf_of
from tests.web.test_bad_input import all_routes


def login(app, email: str, password: str = PASSWORD) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")
    token = csrf_of(client, "/login")
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def replay(app, cookies) -> TestClient:
    """Another client holding a saved copy of a cookie."""
    client = TestClient(app, base_url="http://127.0.0.1")
    for name, value in cookies.items():
        client.cookies.set(name, value)
    return client


def session_rows(pipeline) -> int:
    with pipeline.db.session() as session:
        return session.scalar(select(func.count()).select_from(WebSession))


def test_a_saved_cookie_stops_working_after_logout(app, alice: User, pipeline) -> None:
    saved = dict(alice.client.cookies)
    assert replay(app, saved).get("/api/me").status_code == 200
    rows = session_rows(pipeline)
    response = alice.client.post("/logout", data={"csrf_token": alice.csrf},
                                 follow_redirects=False)
    assert response.status_code == 303
    assert session_rows(pipeline) == rows - 1
    stolen = replay(app, saved)
    me = stolen.get("/api/me")
    assert me.status_code == 401 and me.json()["error"]["code"] == "unauthenticated"
    assert stolen.get("/settings", follow_redirects=False).status_code == 303


def test_log_out_everywhere_ends_every_session(app, alice: User) -> None:
    other = login(app, "alice@example.com")
    saved = dict(other.cookies)
    assert other.get("/api/me").status_code == 200
    response = alice.client.post("/logout/everywhere", data={"csrf_token": alice.csrf},
                                 follow_redirects=False)
    assert response.status_code == 303
    assert alice.client.get("/api/me").status_code == 401
    assert other.get("/api/me").status_code == 401
    assert replay(app, saved).get("/api/me").status_code == 401


def test_password_change_revokes_other_sessions_and_keeps_this_one(
    app, alice: User, bob: User
) -> None:
    other = login(app, "alice@example.com")
    wrong = alice.client.post("/settings/password", data={
        "csrf_token": alice.csrf, "current_password": "not it",
        "new_password": "a brand new password"}, follow_redirects=False)
    assert wrong.status_code == 422 and "current password" in wrong.text
    assert other.get("/api/me").status_code == 200  # nothing changed
    changed = alice.client.post("/settings/password", data={
        "csrf_token": alice.csrf, "current_password": PASSWORD,
        "new_password": "a brand new password"}, follow_redirects=False)
    assert changed.status_code == 303
    assert alice.client.get("/api/me").status_code == 200
    assert other.get("/api/me").status_code == 401
    assert bob.client.get("/api/me").status_code == 200  # another user is untouched
    assert login(app, "alice@example.com", "a brand new password").get(
        "/api/me").status_code == 200


def call_unread(app, method: str, path: str, headers: list[tuple[bytes, bytes]]):
    """Send a request straight to the ASGI app; return (status, headers, body chunks read)."""
    reads = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 80),
        "headers": [(b"host", b"127.0.0.1"), (b"content-length", b"1000000"), *headers],
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], dict(start["headers"]), reads


def test_strangers_are_refused_before_the_body_is_read(app, anon: TestClient) -> None:
    unsafe = sorted({(method, route.path) for route in all_routes(app.routes)
                     for method in route.methods - {"GET", "HEAD", "OPTIONS"}})
    assert ("POST", "/tracks/upload") in unsafe and len(unsafe) >= 15
    for method, path in unsafe:
        if path in ("/login", "/signup", "/logout"):
            continue
        url = re.sub(r"\{[^}]+\}", "0b9e3a52-1c61-4a53-9a0b-2f6f1d0a0e11", path)
        for content_type in (b"multipart/form-data; boundary=x", b"application/json"):
            status, headers, reads = call_unread(
                app, method, url, [(b"content-type", content_type)])
            assert reads == 0, (method, url)
            if url.startswith("/api/"):
                assert status == 401, (method, url, status)
            else:
                assert status == 303 and headers[b"location"].startswith(b"/login"), (
                    method, url, status)
            assert headers[b"connection"] == b"close"
