"""Browser sessions kept on the server, so that they can be revoked.

The signed cookie carries a random session id. Only its SHA-256 is stored (a
database leak gives no usable cookie). A request's session is valid while
its row exists and has not expired. Logout deletes the row; a password
change and "log out everywhere" delete all of the user's rows.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from soundforge.db.base import utcnow
from soundforge.db.models import User, WebSession


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def start_web_session(session: Session, user: User, max_age: float) -> str:
    """A new session row for ``user``; returns the id to put in the cookie."""
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    # Expired rows of anyone go on the way: nothing else needs to sweep them.
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    session.add(WebSession(user_id=user.id, token_hash=_hash(raw), created_at=now,
                           expires_at=now + timedelta(seconds=max_age)))
    session.flush()
    return raw


def web_session_user_id(session: Session, raw: str) -> int | None:
    """The user id of a live session, or None (unknown, revoked or expired)."""
    row = session.scalar(select(WebSession).where(WebSession.token_hash == _hash(raw)))
    if row is None or row.expires_at <= utcnow():
        return None
    return row.user_id


def end_web_session(session: Session, raw: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == _hash(raw)))


def end_all_web_sessions(session: Session, user_id: int) -> int:
    """Revoke every session of the user; returns how many there were."""
    result = session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)
