"""Every node of an installation must run with the same server secret.

Sessions are signed and users' LALAL.AI keys are encrypted with keys derived
from ``SOUNDFORGE_SECRET_KEY`` (or ``data_dir/secret_key`` when it is unset). A
node that generated its own secret would start, then fail on every stored key
and sign everyone out. So the database records an HMAC of a fixed text under
the secret (``installation_secret``), written by the first node; every later
start compares it and refuses to run on a mismatch, naming the setting.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from soundforge.config import Settings
from soundforge.db.models import InstallationSecret, UserSettings
from soundforge.db.security import SecretError, decrypt_secret, derive_key
from soundforge.db.session import Database

_CHECK_TEXT = b"soundforge: the secret that wrote this database"
_ROW_ID = 1


class SecretMismatchError(SecretError):
    """This node's server secret is not the one the database was written with."""


def _check_value(settings: Settings) -> str:
    return hmac.new(derive_key(settings, "installation-check:v1"), _CHECK_TEXT,
                    hashlib.sha256).hexdigest()


def _mismatch(settings: Settings) -> SecretMismatchError:
    where = ("SOUNDFORGE_SECRET_KEY" if settings.secret_key is not None
             else f"the generated {settings.data_dir / 'secret_key'} (SOUNDFORGE_SECRET_KEY unset)")
    return SecretMismatchError(
        f"This node's server secret ({where}) is not the one this database was written "
        "with, so it could read neither the users' stored LALAL.AI keys nor their sessions. "
        "Every web node and worker must run with the same SOUNDFORGE_SECRET_KEY: set it to "
        "the value the other nodes use, then start again."
    )


def verify_installation_secret(settings: Settings, db: Database) -> None:
    """Record the secret's check on first start; refuse a different secret later."""
    expected = _check_value(settings)
    with db.session() as session:
        stored = session.scalar(select(InstallationSecret.check_value)
                                .where(InstallationSecret.id == _ROW_ID))
        if stored is not None:
            if not hmac.compare_digest(stored, expected):
                raise _mismatch(settings)
            return
        # A database from before this check: a stored key tells whether this
        # secret is the one that wrote it.
        sample = session.scalar(select(UserSettings.lalalai_key_encrypted)
                                .where(UserSettings.lalalai_key_encrypted.is_not(None)).limit(1))
    if sample is not None:
        try:
            decrypt_secret(settings, sample)
        except SecretError:
            raise _mismatch(settings) from None
    try:
        with db.transaction() as session:
            session.add(InstallationSecret(id=_ROW_ID, check_value=expected))
    except IntegrityError:
        # Another node recorded its check at the same instant: compare with it.
        verify_installation_secret(settings, db)
