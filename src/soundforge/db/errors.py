"""Errors of the data layer that a caller turns into an answer (404, 409 …)."""

from __future__ import annotations

from soundforge.errors import SoundForgeError


class NotFoundError(SoundForgeError):
    """No such row, or not one the user may see (both look the same on purpose)."""

    code = "not_found"
