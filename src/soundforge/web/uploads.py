"""Upload size limits, enforced while the body arrives.

A request announcing more than the limit (``Content-Length``) is answered 413
before a byte is read; a chunked request is counted as it streams and stopped
the moment it passes the limit, so an oversized upload never fills the disk.
The limit is ``SOUNDFORGE_MAX_UPLOAD_MB`` per request, plus a little room for
the multipart envelope; the pages upload one file per request.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from soundforge.web.errors import TooLarge, scope_wants_json

ENVELOPE_SLACK = 256 * 1024


class UploadLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, limit_mb: int) -> None:
        self.app = app
        self.max_bytes = max_bytes + ENVELOPE_SLACK
        self.limit_mb = limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body parsing: the app's error
                    # handler turns it into a 413 like any other error.
                    raise TooLarge(self.limit_mb)
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = TooLarge(self.limit_mb)
        if scope_wants_json(scope):
            body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
            content_type = b"application/json"
        else:
            body = (
                "<!doctype html><title>Too large</title>"
                f"<p>{error.message}</p><p><a href=\"/\">Back to the library</a></p>"
            ).encode()
            content_type = b"text/html; charset=utf-8"
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                # The client may still be sending: tell it to stop.
                (b"connection", b"close"),
            ],
        })
        await send({"type": "http.response.body", "body": body})
