"""Which LALAL.AI license key a separation uses, and how to refer to it safely.

Order of preference (the seed's rule, "the user's key wins"):

1. a key handed to the engine (a user's own key stored in Settings, passed by
   the web app or the worker),
2. ``LALALAI_API_KEY`` (``settings.lalalai_api_key``), the user's own key on a
   single-user install,
3. ``SYSTEM_LALALAI_ACTIVATION_KEY``, the installation's shared key.

Keys travel as ``pydantic.SecretStr`` so that a repr, a log line or a settings
dump shows ``**********``; the clear text is only taken out when the HTTP
header is built.
"""

from __future__ import annotations

import hashlib

from pydantic import SecretStr

from soundforge.config import Settings
from soundforge.errors import AuthError

MISSING_KEY_MESSAGE = (
    "No LALAL.AI license key is set. Set LALALAI_API_KEY to your own key "
    "(or SYSTEM_LALALAI_ACTIVATION_KEY to this installation's key), or save your "
    "key under Settings → Cloud Separation. Keys are on your lalal.ai account page."
)


def _usable(key: str | SecretStr | None) -> SecretStr | None:
    if key is None:
        return None
    secret = key if isinstance(key, SecretStr) else SecretStr(key)
    # A blank value (``LALALAI_API_KEY=`` in a .env file) means "not set".
    if not secret.get_secret_value().strip():
        return None
    return SecretStr(secret.get_secret_value().strip())


def resolve_key(explicit: str | SecretStr | None, settings: Settings) -> SecretStr | None:
    """The key to use, or None when none is configured anywhere."""
    for candidate in (explicit, settings.lalalai_api_key, settings.system_lalalai_activation_key):
        key = _usable(candidate)
        if key is not None:
            return key
    return None


def require_key(explicit: str | SecretStr | None, settings: Settings) -> SecretStr:
    key = resolve_key(explicit, settings)
    if key is None:
        raise AuthError(MISSING_KEY_MESSAGE)
    return key


def key_id(key: SecretStr) -> str:
    """A stable, non-reversible name for a key (for the usage ledger and the
    per-key rate limiter), so neither ever holds the key itself."""
    digest = hashlib.sha256(key.get_secret_value().encode("utf-8")).hexdigest()
    return f"key-{digest[:16]}"


def scrub(text: str, key: SecretStr | None) -> str:
    """Remove the key from text that came from elsewhere (a provider's error
    detail could echo it back) before it reaches a message or a log."""
    if key is None:
        return text
    secret = key.get_secret_value()
    return text.replace(secret, "**********") if secret else text
