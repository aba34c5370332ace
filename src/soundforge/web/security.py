"""Browser sessions, CSRF tokens and login rate limiting.

* Sessions are Starlette's signed cookie (HttpOnly, SameSite=Lax, Secure when
  the site is served over HTTPS), signed with a key derived from the server
  secret for this purpose only. The session stores the user id and a
  fingerprint of the password hash, so changing the password ends every other
  session.
* CSRF: a random token per session, required on every state-changing request
  that is authenticated by the cookie (form field ``csrf_token`` or header
  ``X-CSRF-Token``). Requests authenticated by an API token carry no cookie and
  need none. SameSite=Lax alone would stop most cross-site posts; the token
  also covers same-site attackers and old browsers.
* Login attempts: a sliding window per (address, email) and per address, kept
  in the database so that every web process of an installation counts the
  same failures (see docs/web.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from soundforge.db import Database
from soundforge.db.models import LoginFailure, LoginKnownAddress

CSRF_SESSION_KEY = "csrf"
SESSION_MAX_AGE = 14 * 24 * 3600  # the cookie's and the server-side session's lifetime
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def csrf_token(conn: HTTPConnection) -> str:
    """The session's CSRF token, created on first use."""
    token = conn.session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        conn.session[CSRF_SESSION_KEY] = token
    return token


def csrf_matches(conn: HTTPConnection, presented: str | None) -> bool:
    expected = conn.session.get(CSRF_SESSION_KEY)
    if not presented or not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def password_fingerprint(password_hash: str, key: bytes) -> str:
    """Changes when the password changes; reveals nothing about it."""
    return hmac.new(key, password_hash.encode(), hashlib.sha256).hexdigest()[:24]


class LoginLimiter:
    """Failed sign-ins, counted in the database for every web process:

    * 5 per 15 minutes for one email from one address: a client can only
      lock *itself* out of an account;
    * 30 per 15 minutes from one address whatever the email, except for
      accounts that signed in from that address before (within 90 days): one
      client spraying made-up emails cannot lock out the people beside it
      (the same office, the same proxy).

    There is deliberately no limit per account across addresses: anyone could
    then lock any user out by failing on their email. The address is the
    connection's, or the one a trusted proxy forwarded (SOUNDFORGE_TRUSTED_PROXIES).
    """

    KNOWN_FOR = 90 * 24 * 3600.0

    def __init__(
        self,
        db: Database,
        per_account: int = 5,
        per_address: int = 30,
        period: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.limits = {"account": per_account, "address": per_address}
        self.period = period
        self.clock = clock

    @staticmethod
    def _keys(address: str, email: str) -> dict[str, str]:
        # Hashed: the table never holds the email of someone who mistyped it.
        return {
            "account": hashlib.sha256(f"account|{address}|{email}".encode()).hexdigest(),
            "address": hashlib.sha256(f"address|{address}".encode()).hexdigest(),
        }

    def _known(self, session: Session, address: str, email: str, now: float) -> bool:
        at = session.scalar(select(LoginKnownAddress.at).where(
            LoginKnownAddress.key == self._keys(address, email)["account"]))
        return at is not None and at > now - self.KNOWN_FOR

    def retry_after(self, address: str, email: str) -> float:
        """0 when another attempt is allowed now, else seconds to wait."""
        now = self.clock()
        wait = 0.0
        with self.db.session() as session:
            known = self._known(session, address, email, now)
            for kind, key in self._keys(address, email).items():
                if kind == "address" and known:
                    continue
                limit = self.limits[kind]
                # The attempt that must leave the window before another is allowed.
                blocking = session.scalar(
                    select(LoginFailure.at)
                    .where(LoginFailure.key == key, LoginFailure.at > now - self.period)
                    .order_by(LoginFailure.at.desc())
                    .offset(limit - 1)
                    .limit(1)
                )
                if blocking is not None:
                    wait = max(wait, blocking + self.period - now)
        return wait

    def failed(self, address: str, email: str) -> None:
        now = self.clock()
        with self.db.transaction() as session:
            session.add_all(LoginFailure(key=key, at=now)
                            for key in self._keys(address, email).values())
            # Attempts that no window can see any more: the table stays small.
            session.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.period))

    def succeeded(self, address: str, email: str) -> None:
        now = self.clock()
        key = self._keys(address, email)["account"]
        expired = now - self.period
        with self.db.transaction() as session:
            session.execute(
                delete(LoginFailure).where(or_(LoginFailure.key == key, LoginFailure.at <= expired))
            )
            session.execute(delete(LoginKnownAddress).where(
                LoginKnownAddress.at <= now - self.KNOWN_FOR))
            known = session.execute(
                update(LoginKnownAddress).where(LoginKnownAddress.key == key).values(at=now))
        if getattr(known, "rowcount", 0):
            return
        # Two sign-ins of the same account at one instant: either insert will do.
        with contextlib.suppress(IntegrityError), self.db.transaction() as session:
            session.add(LoginKnownAddress(key=key, at=now))
