"""HTTP errors with a stable code, and how they reach the client.

Every error is answered as ``{"error": {"code", "message"}}`` to API clients and
scripts (paths under ``/api/``, or a request that asks for JSON), and as an
error page to a browser. A ``SoundForgeError`` from the engines, the library or
the job service keeps its own ``code`` and ``message``; its class picks the
HTTP status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from soundforge import errors as sf
from soundforge.db.security import SecretError
from soundforge.errors import NotFoundError
from soundforge.jobs.service import QueueUnavailableError
from soundforge.library.files import hide_server_paths

log = logging.getLogger(__name__)


class WebError(Exception):
    """An HTTP error with a stable code and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class NotFound(WebError):
    def __init__(self, what: str = "page") -> None:
        super().__init__(404, "not_found", f"This {what} does not exist or is not yours.")


class Unauthenticated(WebError):
    def __init__(self) -> None:
        super().__init__(
            401,
            "unauthenticated",
            "Sign in, or send a personal API token as 'Authorization: Bearer sf_…'.",
            {"WWW-Authenticate": 'Bearer realm="soundforge"'},
        )


class CsrfError(WebError):
    def __init__(self) -> None:
        super().__init__(
            403,
            "csrf_failed",
            "The form expired or did not come from this site. Reload the page and try again.",
        )


class TooLarge(WebError):
    def __init__(self, limit_mb: int) -> None:
        super().__init__(
            413,
            "too_large",
            f"The upload is larger than the limit of {limit_mb} MB "
            "(SOUNDFORGE_MAX_UPLOAD_MB on the server).",
        )


# Errors the framework raises (a malformed body, a wrong method, a bad Range …)
# → a stable code from the documented catalogue (docs/web.md, "Errors"). Any
# other status gets the generic ``http_error``, never an undocumented ``http_NNN``.
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_request",
    429: "rate_limited",
}

# SoundForgeError subclasses → HTTP status. Most specific first.
_STATUS_BY_ERROR: tuple[tuple[type[sf.SoundForgeError], int], ...] = (
    (NotFoundError, 404),
    (sf.InvalidOptionError, 422),
    (sf.InputAudioError, 422),
    (sf.QuotaError, 402),
    # A missing or refused provider key is something the user fixes in Settings.
    (sf.AuthError, 422),
    (sf.ProviderError, 502),
    (sf.CancelledError, 409),
    (sf.ModelUnavailableError, 503),
    (QueueUnavailableError, 503),
    # The stored LALAL.AI key cannot be read with this server secret: enter it again.
    (SecretError, 422),
    (sf.OutputError, 507),
    (sf.EngineError, 500),
)


def status_for(error: sf.SoundForgeError) -> int:
    for klass, status in _STATUS_BY_ERROR:
        if isinstance(error, klass):
            return status
    return 400


def public_message(request: Request, exc: sf.SoundForgeError) -> str:
    """The error's message without the server's paths (the engines name files
    by their full path, which suits the command line, not a web client)."""
    return hide_server_paths(exc.message, request.app.state.settings)


def scope_wants_json(scope: Mapping[str, Any]) -> bool:
    """Whether the client of this ASGI request reads JSON errors, not pages.

    On the raw scope, so the middleware that runs before a ``Request`` exists
    (``guard.py``) decides as the error handlers do."""
    path = str(scope.get("path", ""))
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    accept = headers.get(b"accept", b"").decode("latin-1")
    if path.startswith("/api/") or path == "/api":
        return True
    # Scripts: a token, or a file route asked by something that is not a
    # browser page (curl sends */*) gets the JSON error, not an HTML page.
    if headers.get(b"authorization", b"").lower().startswith(b"bearer "):
        return True
    if path.startswith(("/export/", "/files/")) and "text/html" not in accept:
        return True
    if "application/json" in accept and "text/html" not in accept:
        return True
    return headers.get(b"x-requested-with", b"").lower() == b"xmlhttprequest"


def wants_json(request: Request) -> bool:
    return scope_wants_json(request.scope)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    return {"error": body}


def _render(request: Request, status: int, code: str, message: str,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    if wants_json(request):
        return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)
    if status == 401:
        # A browser that is not signed in goes to the sign-in page and comes back.
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "error.html",
        # The error page does not look the user up again (the error may be
        # about exactly that): it shows the signed-out header.
        {"status": status, "code": code, "message": message, "user": None, "flashes": []},
        status_code=status,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> Response:
        return _render(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(sf.SoundForgeError)
    async def _domain_error(request: Request, exc: sf.SoundForgeError) -> Response:
        return _render(request, status_for(exc), exc.code, public_message(request, exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for item in exc.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            problems.append(f"{where}: {item.get('msg', 'invalid')}" if where else item["msg"])
        message = "Invalid request: " + "; ".join(problems) if problems else "Invalid request."
        return _render(request, 422, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404:
            message = "This page does not exist or is not yours."
        return _render(request, exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Never show internals: log them for the operator, say something useful.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _render(
            request, 500, "internal_error",
            "Something went wrong on the server. The error was logged; try again.",
        )
