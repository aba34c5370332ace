"""The Settings page: Demucs, Cloud Separation (LALAL.AI), API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from soundforge.db import ApiToken, User
from soundforge.db.accounts import (
    authenticate,
    create_api_token,
    get_user_settings,
    set_password,
)
from soundforge.db.base import is_row_id
from soundforge.engines.lalalai.ledger import DatabaseUsageLedger
from soundforge.engines.lalalai.quota import get_quota
from soundforge.errors import AuthError, InvalidOptionError, SoundForgeError
from soundforge.web import catalog
from soundforge.web.deps import Csrf, DbSession, PageUser, login_session
from soundforge.web.errors import NotFound
from soundforge.web.pages import flash, redirect, render
from soundforge.web.user_settings import apply_settings_update

router = APIRouter(tags=["pages"], include_in_schema=False)


def _context(session: DbSession, user: User, **extra: Any) -> dict[str, Any]:
    prefs = get_user_settings(session, user)
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    ).all()
    data: dict[str, Any] = {
        "prefs": prefs,
        "tokens": tokens,
        "models": catalog.MODELS,
        "ensembles": catalog.ensembles(),
        "devices": catalog.device_choices(),
        "formats": catalog.OUTPUT_FORMATS,
        "format_labels": catalog.FORMAT_LABELS,
        "engine_labels": catalog.ENGINE_LABELS,
        "comparison": catalog.comparison_rows(),
        "new_token": None,
        "error": None,
    }
    data.update(extra)
    return data


@router.get("/settings")
def settings_page(request: Request, session: DbSession, user: PageUser) -> Response:
    return render(request, "settings.html", _context(session, user), user=user)


def _save(
    request: Request, session: DbSession, user: User, changes: dict[str, Any], done: str,
    anchor: str, kind: str = "ok",
) -> Response:
    try:
        apply_settings_update(request.app.state.settings, get_user_settings(session, user),
                              changes)
        session.commit()
    except InvalidOptionError as exc:
        session.rollback()
        return render(request, "settings.html", _context(session, user, error=exc.message),
                      user=user, status_code=422)
    flash(request, kind, done)
    return redirect(f"/settings#{anchor}")


@router.post("/settings/demucs", dependencies=[Csrf])
def save_demucs(
    request: Request,
    session: DbSession,
    user: PageUser,
    demucs_model: str = Form(...),
    device: str = Form("auto"),
    output_format: str = Form("wav"),
) -> Response:
    changes = {"demucs_model": demucs_model, "device": device, "output_format": output_format}
    return _save(request, session, user, changes, "Demucs settings saved.", "demucs")


@router.post("/settings/cloud", dependencies=[Csrf])
def save_cloud(
    request: Request,
    session: DbSession,
    user: PageUser,
    engine: str = Form(...),
    lalalai_api_key: str = Form(""),
    remove_key: str | None = Form(None),
    lalalai_preview: str | None = Form(None),
) -> Response:
    changes: dict[str, Any] = {"engine": engine, "lalalai_preview": lalalai_preview is not None}
    done = "Cloud separation settings saved."
    if remove_key is not None:
        changes["lalalai_api_key"] = None
    elif lalalai_api_key.strip():
        # A blank field keeps the saved key: the page never sends it back.
        changes["lalalai_api_key"] = lalalai_api_key
        # A new key is tried at once, and the answer is the page's first line:
        # a "saved" banner above a key LALAL.AI refuses would mislead.
        try:
            checked = _test_key(request, lalalai_api_key.strip())
        except (AuthError, InvalidOptionError) as exc:
            # Shown as chosen (engine, preview), though nothing is stored: the
            # user fixes the key and saves again without redoing the rest.
            prefs = get_user_settings(session, user)
            if engine in catalog.ENGINE_LABELS:
                prefs.engine = engine
            prefs.lalalai_preview = lalalai_preview is not None
            page = render(request, "settings.html", _context(
                session, user, error=f"Nothing was saved. {exc.message}"), user=user,
                status_code=422)
            session.rollback()
            return page
        except SoundForgeError as exc:
            # The provider is down or unreachable: keep the key, say it is unchecked.
            return _save(request, session, user, changes,
                         f"{done} The key could not be checked now: {exc.message}", "cloud",
                         kind="info")
        done += f" The key works: {checked['remaining_minutes']:.1f} minutes left."
    return _save(request, session, user, changes, done, "cloud")


def _test_key(request: Request, key: str) -> dict[str, float]:
    if len(key) > 200:
        raise InvalidOptionError("That is not a LALAL.AI key (too long).")
    return get_quota(request.app.state.settings, key, DatabaseUsageLedger(request.app.state.db))


@router.post("/settings/tokens", dependencies=[Csrf])
def new_token(
    request: Request, session: DbSession, user: PageUser, name: str = Form("")
) -> Response:
    name = name.strip()[:200] or "API token"
    _, raw = create_api_token(session, user, name)
    session.commit()
    # Shown on this response only (never stored in a cookie or a flash).
    return render(
        request,
        "settings.html",
        _context(session, user, new_token={"name": name, "value": raw}),
        user=user,
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.post("/settings/tokens/{token_id}/delete", dependencies=[Csrf])
def delete_token(request: Request, session: DbSession, user: PageUser, token_id: int) -> Response:
    token = session.get(ApiToken, token_id) if is_row_id(token_id) else None
    if token is None or token.user_id != user.id:
        raise NotFound("token")
    session.delete(token)
    session.commit()
    flash(request, "ok", f"Token “{token.name}” revoked.")
    return redirect("/settings#tokens")


@router.post("/settings/exports", dependencies=[Csrf])
def save_exports(
    request: Request,
    session: DbSession,
    user: PageUser,
    filename_template: str = Form(""),
) -> Response:
    changes = {"filename_template": filename_template}
    return _save(request, session, user, changes, "Export settings saved.", "exports")


@router.post("/settings/password", dependencies=[Csrf])
def change_password(
    request: Request,
    session: DbSession,
    user: PageUser,
    current_password: str = Form(""),
    new_password: str = Form(""),
) -> Response:
    """A new password ends every session of the user; this browser signs in again."""
    try:
        if authenticate(session, user.email, current_password) is None:
            raise InvalidOptionError("Your current password is not right; nothing was changed.")
        set_password(session, user, new_password)
        session.commit()
    except InvalidOptionError as exc:
        session.rollback()
        return render(request, "settings.html", _context(session, user, error=exc.message),
                      user=user, status_code=422)
    login_session(request, user, session)
    flash(request, "ok", "Password changed. Every other browser was signed out.")
    return redirect("/settings#account")
