"""Sign up, log in, log out."""

from __future__ import annotations

import math

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from soundforge.db import User
from soundforge.db.accounts import MIN_PASSWORD_LENGTH, authenticate, create_user, normalize_email
from soundforge.db.web_sessions import end_all_web_sessions
from soundforge.errors import InvalidOptionError
from soundforge.web.deps import (
    Csrf,
    DbSession,
    OptionalUser,
    PageUser,
    login_session,
    logout_session,
)
from soundforge.web.pages import flash, redirect, render, safe_next

router = APIRouter(tags=["pages"], include_in_schema=False)
# The limiter's "email" for sign-ups that named a taken address: they share the
# address's budget with failed logins, and have 5 of their own per 15 minutes.
SIGNUP_PROBE = "\x00signup"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
def login_page(request: Request, user: OptionalUser, next: str = "/") -> Response:
    if user is not None:
        return redirect(safe_next(next))
    return render(request, "login.html", {"error": None, "email": "", "next_url": safe_next(next)})


@router.post("/login", dependencies=[Csrf])
def login(
    request: Request,
    session: DbSession,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
) -> Response:
    limiter = request.app.state.login_limiter
    address = client_address(request)
    email_key = normalize_email(email)
    wait = limiter.retry_after(address, email_key)
    context = {"email": email, "next_url": safe_next(next)}
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        return render(
            request,
            "login.html",
            {**context, "error": f"Too many failed attempts. Try again in {minutes} minute"
             f"{'s' if minutes > 1 else ''}."},
            status_code=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    user = authenticate(session, email, password)
    if user is None:
        limiter.failed(address, email_key)
        return render(
            request,
            "login.html",
            {**context, "error": "That email and password do not match an account."},
            status_code=401,
        )
    session.commit()  # last login time, a rehashed password
    limiter.succeeded(address, email_key)
    login_session(request, user, session)
    return redirect(safe_next(next))


CLOSED = ("Sign-up is closed on this server. Ask its administrator for an account "
          "(they add it with `soundforge users add`).")


def signup_closed(request: Request, session: DbSession) -> bool:
    """SOUNDFORGE_SIGNUP=closed lets only the very first account be made here."""
    if request.app.state.settings.signup == "open":
        return False
    return session.scalar(select(User.id).limit(1)) is not None


@router.get("/signup")
def signup_page(request: Request, session: DbSession, user: OptionalUser) -> Response:
    if user is not None:
        return redirect("/")
    closed = signup_closed(request, session)
    return render(
        request,
        "signup.html",
        {"error": CLOSED if closed else None, "closed": closed, "email": "",
         "display_name": "", "min_password": MIN_PASSWORD_LENGTH},
        status_code=403 if closed else 200,
    )


@router.post("/signup", dependencies=[Csrf])
def signup(
    request: Request,
    session: DbSession,
    email: str = Form(""),
    password: str = Form(""),
    display_name: str = Form(""),
) -> Response:
    context = {"email": email, "display_name": display_name, "closed": False,
               "min_password": MIN_PASSWORD_LENGTH}
    if signup_closed(request, session):
        return render(request, "signup.html", {**context, "error": CLOSED, "closed": True},
                      status_code=403)
    # Asking about taken addresses is limited like guessing passwords: an
    # address that keeps hitting existing accounts is slowed down (see docs/web.md).
    limiter = request.app.state.login_limiter
    address = client_address(request)
    wait = limiter.retry_after(address, SIGNUP_PROBE)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        return render(request, "signup.html",
                      {**context, "error": f"Too many attempts. Try again in {minutes} minute"
                       f"{'s' if minutes > 1 else ''}."},
                      status_code=429, headers={"Retry-After": str(math.ceil(wait))})
    try:
        try:
            user = create_user(session, email, password, display_name.strip()[:200] or None)
            session.commit()
        except IntegrityError:
            # Two sign-ups with one address at the same instant: the second loses.
            raise InvalidOptionError("An account with this email already exists.") from None
    except InvalidOptionError as exc:
        session.rollback()
        if "already exists" in exc.message:
            limiter.failed(address, SIGNUP_PROBE)
        return render(request, "signup.html", {**context, "error": exc.message},
                      status_code=422)
    login_session(request, user, session)
    # This address is now one the account is known at (see LoginLimiter).
    request.app.state.login_limiter.succeeded(client_address(request), user.email)
    flash(request, "ok", "Welcome to SoundForge! Drop a track below to get started.")
    return redirect("/")


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, session: DbSession) -> Response:
    # Deleted on the server too: a copy of the cookie stops working now.
    logout_session(request, session)
    return redirect("/login")


@router.post("/logout/everywhere", dependencies=[Csrf])
def logout_everywhere(request: Request, session: DbSession, user: PageUser) -> Response:
    """End every browser session of the user (a lost laptop, a shared computer)."""
    end_all_web_sessions(session, user.id)
    session.commit()
    request.session.clear()
    return redirect("/login")

