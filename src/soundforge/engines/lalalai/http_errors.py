"""LALAL.AI's refusals and network failures → SoundForge errors a person can act on.

``code`` (never the ``detail`` prose) decides what kind of failure an answer
is; the words come from ``CODE_MESSAGES`` or from the HTTP status. Whatever
the provider said is scrubbed of the license key before it is shown.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from soundforge.engines.lalalai.errors import ProviderUnavailableError, RateLimitedError
from soundforge.engines.lalalai.keys import scrub
from soundforge.errors import AuthError, ProviderError, QuotaError, SoundForgeError


def error_for(
    name: str, status: int, payload: Any, *, tries: int, base_url: str, key: SecretStr
) -> SoundForgeError:
    """The final error for an answer that is not 2xx (after ``tries`` tries), in
    words a user can act on; the key is scrubbed from what the provider said."""
    detail = scrub(detail_text(payload), key)
    code = payload.get("code") if isinstance(payload, dict) else None
    if status in (401, 403) or license_refusal(status, code, detail):
        if "provide license key" in detail.lower():
            return AuthError(
                "LALAL.AI received no license key. Set LALALAI_API_KEY (your own "
                "key) or SYSTEM_LALALAI_ACTIVATION_KEY (this installation's key)."
            )
        # The provider refuses a bad license state with 400 before any task
        # exists, a missing or unknown key with 401/403: all of them are a
        # key for the user to fix, not a provider failure.
        said = f": {detail.rstrip('.')}" if detail else ""
        return AuthError(
            f"LALAL.AI refused the license key (HTTP {status}{said}). It is wrong, "
            "expired or revoked: copy it again from your lalal.ai account into "
            "Settings → Cloud Separation (or LALALAI_API_KEY / "
            "SYSTEM_LALALAI_ACTIVATION_KEY for the installation's key)."
        )
    if status == 429:
        return RateLimitedError(
            "LALAL.AI is rate-limiting status checks for this key (30 a minute)."
        )
    if status >= 500:
        return ProviderUnavailableError(
            f"LALAL.AI is not working right now (HTTP {status} on {name}, "
            f"{tries} tries). Try again in a few minutes."
        )
    if status == 404:
        return ProviderError(
            f"LALAL.AI has no {name} endpoint at {base_url} (HTTP 404). "
            "SOUNDFORGE_LALALAI_URL must point at the API root, e.g. "
            "https://www.lalal.ai/api/v1/."
        )
    if status == 422:
        return ProviderError(
            f"LALAL.AI rejected the {name} request as malformed ({detail}). "
            "This is a bug in SoundForge; please report it."
        )
    if code in CODE_MESSAGES:
        error_class, message = CODE_MESSAGES[code]
        return error_class(message)
    return ProviderError(
        f"LALAL.AI refused the {name} request (HTTP {status}): {detail or 'no reason given'}."
    )


# Codes from the provider's error catalogue → (error class, words for the user).
CODE_MESSAGES: dict[str, tuple[type[ProviderError], str]] = {
    "exceeded_duration": (
        QuotaError,
        "Not enough LALAL.AI minutes left on this key for this separation. Top up "
        "your lalal.ai account, choose fewer stems, or try the 60-second preview.",
    ),
    "max_duration": (
        ProviderError,
        "The track is longer than your LALAL.AI license allows. Split it into shorter "
        "parts or upgrade the license.",
    ),
    "exceeded_size": (
        ProviderError,
        "The file is larger than your LALAL.AI license allows. Use a smaller file "
        "(for example a compressed format) or upgrade the license.",
    ),
    "batch_not_avaliable": (  # sic: the provider's spelling
        ProviderError,
        "Batch processing is not available on this LALAL.AI license.",
    ),
    "idempotency_key_used": (
        ProviderError,
        "LALAL.AI had already started this task when SoundForge asked again, and did "
        "not say which task it was. Check your lalal.ai account before retrying, so "
        "that the minutes are not spent twice.",
    ),
    "internal_error": (
        ProviderUnavailableError,
        "LALAL.AI kept failing to start the task (internal error). Try again later.",
    ),
}


def payload_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text[:200]}


def license_refusal(status: int, code: object, detail: str) -> bool:
    """A 400 about the license itself (invalid, expired, blocked key), as opposed
    to the license codes with their own meaning (minutes, size, duration),
    which ``CODE_MESSAGES`` handles."""
    if status != 400 or code in CODE_MESSAGES:
        return False
    return "licen" in str(code or "").lower() or "licen" in detail.lower()


def detail_text(payload: Any) -> str:
    """``detail`` is a string, or for validation failures a list of
    ``{loc, msg, type}``: make either one line."""
    detail = payload.get("detail") if isinstance(payload, dict) else payload
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if detail is None:
        return ""
    return str(detail)


def network_reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host not found"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection dropped"
    text = str(exc).strip()
    return text or type(exc).__name__
