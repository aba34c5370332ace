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
  in memory: one web process serves one machine (see docs/web.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

CSRF_SESSION_KEY = "csrf"
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


@dataclass
class _Window:
    hits: deque[float] = field(default_factory=deque)


class RateLimiter:
    """At most ``limit`` events per ``period`` seconds for each key."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def _prune(self, window: _Window, now: float) -> None:
        while window.hits and window.hits[0] <= now - self.period:
            window.hits.popleft()

    def retry_after(self, key: str) -> float:
        """0 when another event is allowed now, else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                return 0.0
            self._prune(window, now)
            if len(window.hits) < self.limit:
                return 0.0
            return max(0.0, window.hits[0] + self.period - now)

    def hit(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(key, _Window())
            self._prune(window, now)
            window.hits.append(now)
            # Forget idle keys now and then, so memory stays bounded.
            if len(self._windows) > 10_000:
                for stale in [k for k, w in self._windows.items() if not w.hits]:
                    del self._windows[stale]

    def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)


class LoginLimiter:
    """Failed sign-ins: 5 per 15 minutes for one email from one address, and
    30 per 15 minutes from one address whatever the email."""

    def __init__(self, per_account: int = 5, per_address: int = 30, period: float = 900.0) -> None:
        self.account = RateLimiter(per_account, period)
        self.address = RateLimiter(per_address, period)

    def retry_after(self, address: str, email: str) -> float:
        return max(
            self.account.retry_after(f"{address}|{email}"),
            self.address.retry_after(address),
        )

    def failed(self, address: str, email: str) -> None:
        self.account.hit(f"{address}|{email}")
        self.address.hit(address)

    def succeeded(self, address: str, email: str) -> None:
        self.account.reset(f"{address}|{email}")
