"""Secrets at rest: password hashes, API token hashes, the server secret, encrypted keys.

* Passwords: Argon2id with RFC 9106's low-memory parameters (argon2-cffi's
  default: 64 MiB, 3 passes, 4 lanes); a hash made with other parameters is
  upgraded at the next successful login.
* Personal API tokens: 32 random bytes, so a plain SHA-256 of the token is a
  safe lookup key (nothing to brute-force); the token itself is shown once.
* The server secret (``SOUNDFORGE_SECRET_KEY``): when unset, one is generated
  into ``data_dir/secret_key`` on first start and reused, so sessions and
  encrypted keys survive restarts without any setup. Every process (web,
  workers) on the machine reads the same file.
* Provider keys (the user's LALAL.AI key): Fernet (AES-128-CBC + HMAC-SHA256)
  with a key derived from the server secret by HKDF for this one purpose, so
  the secret used to sign cookies never encrypts data directly.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from soundforge.config import Settings
from soundforge.errors import SoundForgeError
from soundforge.storage.temporary import temp_prefix

SECRET_KEY_FILE = "secret_key"
API_TOKEN_PREFIX = "sf_"

PASSWORD_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(PASSWORD_PARAMETERS)


class SecretError(SoundForgeError):
    """A stored secret cannot be read back (the server secret changed?)."""

    code = "secret_error"


# --- passwords ---------------------------------------------------------------
def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def verify_without_user(password: str) -> None:
    """Spend the time a real check takes when there is no such user, so that the
    answer's timing does not tell which e-mail addresses have accounts."""
    verify_password(_dummy_hash(_hasher), password)


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    # Made on first use, not at import: every CLI start would pay for it.
    return hasher.hash("not a real password, only for constant timing")


def use_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Hash and check passwords with ``hasher`` from now on; returns the one before.

    Only the test suite calls it (argon2's cheapest parameters, so that hundreds
    of sign-ups take milliseconds rather than minutes of CPU): nothing a
    deployment sets can weaken ``PASSWORD_PARAMETERS``."""
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


# --- API tokens ----------------------------------------------------------------
def new_api_token() -> str:
    """A fresh token to show the user once: ``sf_`` + 43 URL-safe characters."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- the server secret -----------------------------------------------------------
def load_secret_key(settings: Settings) -> str:
    """``SOUNDFORGE_SECRET_KEY``, else the one in ``data_dir/secret_key`` (created once)."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    path = Path(settings.data_dir) / SECRET_KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read_secret_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write a private temp file, then hard-link it into place: link() fails when
    # another process won the race, and then we read the winner's key instead.
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return _read_secret_file(path)


def _read_secret_file(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise SecretError(f"{path} is empty: delete it to generate a new secret key.")
    return value


def derive_key(settings: Settings, purpose: str, length: int = 32) -> bytes:
    """A key for one ``purpose``, derived from the server secret (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=b"soundforge",
        info=purpose.encode("utf-8"),
    ).derive(load_secret_key(settings).encode("utf-8"))


def _fernet(settings: Settings) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(settings, "provider-keys:v1")))


def encrypt_secret(settings: Settings, plaintext: str) -> str:
    return _fernet(settings).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_secret(settings: Settings, token: str) -> str:
    try:
        return _fernet(settings).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError):
        raise SecretError(
            "A stored API key cannot be decrypted: the server secret key changed since it "
            "was saved. Enter the key again in Settings."
        ) from None


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
