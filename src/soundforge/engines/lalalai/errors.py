"""Failures specific to the cloud engine, as ``ProviderError`` subclasses so that
callers that only know ``soundforge.errors`` still catch them."""

from __future__ import annotations

from soundforge.errors import ProviderError


class ProviderUnavailableError(ProviderError):
    """LALAL.AI could not be reached or kept failing (network errors, 5xx)."""

    code = "provider_unavailable"


class RateLimitedError(ProviderError):
    """LALAL.AI answered 429: too many ``/check/`` requests for this key."""

    code = "rate_limited"


class ProviderTaskError(ProviderError):
    """A separation task ended with ``status: "error"`` (answered with HTTP 200)."""

    code = "provider_task_failed"
