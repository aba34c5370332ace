"""Request dependencies: the database session and who is asking.

Pages know a user by the session cookie. The REST API accepts a personal API
token (``Authorization: Bearer sf_…``) or, for the app's own pages calling it
with ``fetch``, the session cookie plus the CSRF header on unsafe methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from soundforge.config import Settings
from soundforge.db import Database, User
from soundforge.db.accounts import user_for_api_token
from soundforge.db.web_sessions import end_web_session, start_web_session, web_session_user_id
from soundforge.web.errors import CsrfError, Unauthenticated
from soundforge.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_MAX_AGE,
    csrf_matches,
    password_fingerprint,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_USER = "uid"
SESSION_FINGERPRINT = "pwf"
SESSION_ID = "sid"  # the server-side session (soundforge.db.web_sessions)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_database(request: Request) -> Database:
    return request.app.state.db


def get_session(request: Request) -> Iterator[Session]:
    """One SQLAlchemy session per request; handlers commit what they change."""
    with request.app.state.db.session() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]


def session_user(request: Request, session: Session) -> User | None:
    """The signed-in user of this browser session, or None."""
    uid = request.session.get(SESSION_USER)
    if not isinstance(uid, int):
        return None
    sid = request.session.get(SESSION_ID)
    if not isinstance(sid, str) or web_session_user_id(session, sid) != uid:
        # Logged out, revoked everywhere, expired, or a cookie from before
        # sessions were kept on the server: a signature alone is not enough.
        request.session.clear()
        return None
    user = session.get(User, uid)
    if user is None or not user.is_active:
        request.session.clear()
        return None
    key: bytes = request.app.state.fingerprint_key
    if request.session.get(SESSION_FINGERPRINT) != password_fingerprint(user.password_hash, key):
        # The password changed since this session signed in.
        request.session.clear()
        return None
    return user


def login_session(request: Request, user: User, session: Session) -> None:
    """Start a fresh session for ``user`` (a new CSRF token too: no fixation),
    recorded on the server and committed."""
    logout_session(request, session)
    request.session[SESSION_ID] = start_web_session(session, user, SESSION_MAX_AGE)
    session.commit()
    request.session[SESSION_USER] = user.id
    request.session[SESSION_FINGERPRINT] = password_fingerprint(
        user.password_hash, request.app.state.fingerprint_key
    )


def logout_session(request: Request, session: Session) -> None:
    """End this browser's session on the server and in the cookie."""
    sid = request.session.get(SESSION_ID)
    if isinstance(sid, str):
        end_web_session(session, sid)
        session.commit()
    request.session.clear()


def optional_user(request: Request, session: DbSession) -> User | None:
    return session_user(request, session)


def page_user(request: Request, session: DbSession) -> User:
    """A page that needs a signed-in user (the error handler redirects to /login)."""
    user = session_user(request, session)
    if user is None:
        raise Unauthenticated()
    return user


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def verify_csrf(request: Request) -> None:
    """Unsafe requests authenticated by cookie must carry the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    presented = request.headers.get(CSRF_HEADER)
    if not presented:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
    if not csrf_matches(request, presented):
        raise CsrfError()


# Declares the token scheme in the OpenAPI schema (/docs); the header itself is
# read by bearer_token(), and a missing one falls back to the session cookie.
BEARER = HTTPBearer(
    scheme_name="bearerToken",
    bearerFormat="sf_…",
    description="A personal API token from Settings → API tokens: "
    "`Authorization: Bearer sf_…`. The app's own pages use the session cookie "
    "and the X-CSRF-Token header instead.",
    auto_error=False,
)


def api_user(
    request: Request,
    session: DbSession,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> User:
    """Token or session; with a session, unsafe methods need the CSRF header.

    Sync on purpose: FastAPI runs it in the thread pool, so the database lookup
    never blocks the event loop (which serves the SSE streams)."""
    raw = bearer_token(request)
    if raw is not None:
        user = user_for_api_token(session, raw)
        if user is None:
            raise Unauthenticated()
        session.commit()  # records last_used_at
        request.state.auth = "token"
        return user
    user = session_user(request, session)
    if user is None:
        raise Unauthenticated()
    if request.method not in SAFE_METHODS and not csrf_matches(
        request, request.headers.get(CSRF_HEADER)
    ):
        raise CsrfError()
    request.state.auth = "session"
    return user


PageUser = Annotated[User, Depends(page_user)]
ApiUser = Annotated[User, Depends(api_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
Csrf = Depends(verify_csrf)
