"""Strangers are refused before their request body is read.

A state-changing request needs a signed-in session or an API token. Route
dependencies check that, but only after FastAPI has read a form or JSON body
(and the CSRF check parses forms), so an anonymous client could make the
server read and spool up to the upload limit before a 401. This middleware
runs right after the session cookie is decoded and answers such a request
at once, unread, and asks the client to close the connection.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from soundforge.web.errors import Unauthenticated, scope_wants_json

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The only changes a stranger may ask for: to become someone.
ANONYMOUS_PATHS = frozenset({"/login", "/signup", "/logout"})


class StrangerGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or scope.get("path", "") in ANONYMOUS_PATHS
            or self._has_credentials(scope)
        ):
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, send)

    @staticmethod
    def _has_credentials(scope: Scope) -> bool:
        # A token is checked by the route; here only its presence counts.
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return True
        session = scope.get("session") or {}
        return isinstance(session.get("uid"), int)

    @staticmethod
    async def _refuse(scope: Scope, send: Send) -> None:
        error = Unauthenticated()
        headers = [(b"connection", b"close")]
        if scope_wants_json(scope):
            status = 401
            body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
            headers += [(b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="soundforge"')]
        else:
            status = 303
            body = b""
            headers.append((b"location", f"/login?next={quote(scope.get('path', '/'), safe='')}"
                            .encode("latin-1")))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
