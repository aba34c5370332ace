"""Errors of the data layer that a caller turns into an answer (404, 409 …)."""

from __future__ import annotations

from soundforge.errors import SoundForgeError


class NotFoundError(SoundForgeError):
    """No such row, or not one the user may see (both look the same on purpose)."""

    code = "not_found"

    @classmethod
    def of(cls, what: str) -> NotFoundError:
        """The one wording: another user's item reads exactly like a missing one."""
        return cls(f"This {what} does not exist or is not yours.")
