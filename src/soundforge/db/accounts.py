"""Accounts: create users, check passwords, personal API tokens, provider keys.

Small functions over a ``Session``; the caller owns the transaction.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from soundforge.config import Settings
from soundforge.db.base import utcnow
from soundforge.db.models import ApiToken, User, UserSettings
from soundforge.db.security import (
    decrypt_secret,
    encrypt_secret,
    hash_api_token,
    hash_password,
    new_api_token,
    password_needs_rehash,
    verify_password,
    verify_without_user,
)
from soundforge.db.web_sessions import end_all_web_sessions
from soundforge.errors import InvalidOptionError

MIN_PASSWORD_LENGTH = 8


def user_id_of(user: User | int) -> int:
    """The library and the job service take a user or its id (the worker has only the id)."""
    return user if isinstance(user, int) else user.id


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(
    session: Session, email: str, password: str, display_name: str | None = None
) -> User:
    """A new user with default settings; raises InvalidOptionError if the email is taken."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 320:
        raise InvalidOptionError("Enter a valid email address.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidOptionError(
            f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters."
        )
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise InvalidOptionError("An account with this email already exists.")
    user = User(email=email, password_hash=hash_password(password), display_name=display_name)
    user.settings = UserSettings()
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (never says which was wrong)."""
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        # Spend the same time as a real check, so timing does not reveal accounts.
        verify_without_user(password)
        return None
    if not verify_password(user.password_hash, password) or not user.is_active:
        return None
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Change the password and end every browser session of the user (the
    caller signs the current browser in again if it should stay signed in)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidOptionError(
            f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters."
        )
    user.password_hash = hash_password(password)
    end_all_web_sessions(session, user.id)


def get_user_settings(session: Session, user: User) -> UserSettings:
    """The user's settings row, created with defaults when missing."""
    if user.settings is None:
        user.settings = UserSettings()
        session.flush()
    return user.settings


# --- API tokens ----------------------------------------------------------------
def create_api_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token row and the token itself (show it once; only its hash is kept)."""
    raw = new_api_token()
    token = ApiToken(
        user_id=user.id,
        name=name.strip() or "API token",
        token_hash=hash_api_token(raw),
        token_prefix=raw[:10],
    )
    session.add(token)
    session.flush()
    return token, raw


def user_for_api_token(session: Session, raw: str) -> User | None:
    """The active owner of ``raw`` (and mark the token used), or None."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_api_token(raw)))
    if token is None or not token.user.is_active:
        return None
    token.last_used_at = utcnow()
    return token.user


# --- the user's LALAL.AI key -----------------------------------------------------
def set_lalalai_key(settings: Settings, user_settings: UserSettings, key: str | None) -> None:
    """Store the key encrypted (or forget it with None / an empty string)."""
    key = (key or "").strip()
    if not key:
        user_settings.lalalai_key_encrypted = None
        user_settings.lalalai_key_last4 = None
        return
    user_settings.lalalai_key_encrypted = encrypt_secret(settings, key)
    user_settings.lalalai_key_last4 = key[-4:]


def get_lalalai_key(settings: Settings, user_settings: UserSettings | None) -> str | None:
    """The user's own key in clear text, or None when they have not set one."""
    if user_settings is None or user_settings.lalalai_key_encrypted is None:
        return None
    return decrypt_secret(settings, user_settings.lalalai_key_encrypted)

