"""Helpers shared by the page routers: render, flash messages, redirects."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from soundforge.db import User

FLASH_KEY = "flash"


def flash(request: Request, kind: str, text: str) -> None:
    """A message shown once on the next page (kind: ok, error, info)."""
    messages = list(request.session.get(FLASH_KEY, []))
    messages.append([kind, text])
    request.session[FLASH_KEY] = messages[-5:]


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    user: User | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    data: dict[str, Any] = {"user": user, "flashes": request.session.pop(FLASH_KEY, [])}
    data.update(context or {})
    return request.app.state.templates.TemplateResponse(
        request, template, data, status_code=status_code, headers=headers
    )


def redirect(url: str) -> RedirectResponse:
    # 303: the browser follows a POST with a GET (no "resend form?" prompt).
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None, default: str = "/") -> str:
    """Only same-site paths: ``next=`` must never send a user to another site."""
    if not url:
        return default
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//"):
        return default
    if "\\" in url:
        return default
    return url
