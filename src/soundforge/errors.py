"""Errors a person can act on.

Every failure that reaches a user is a ``SoundForgeError``: ``message`` says what
happened and what to do, ``code`` is a stable identifier for scripts and the
REST API. Nothing else (tracebacks, repr of internals, keys) is shown.
"""

from __future__ import annotations


class SoundForgeError(Exception):
    """Base class: a failure with a message meant for the user."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidOptionError(SoundForgeError):
    """An option has a value we cannot use (unknown model, stem, format …)."""

    code = "invalid_option"


class InputAudioError(SoundForgeError):
    """The input file is missing, not audio, empty or corrupt."""

    code = "invalid_input"


class OutputError(SoundForgeError):
    """The stems cannot be written (not writable, disk full …)."""

    code = "output_error"


class ModelUnavailableError(SoundForgeError):
    """The model's weights are not on this machine and cannot be fetched."""

    code = "model_unavailable"


class EngineError(SoundForgeError):
    """The engine failed while separating."""

    code = "engine_error"


class OutOfMemoryError(EngineError):
    """The compute device ran out of memory, even after the engine's own retries."""

    code = "out_of_memory"


class EngineTimeoutError(EngineError):
    """The engine stopped making progress or ran past its time limit."""

    code = "timeout"


class RunnerLostError(EngineError):
    """The separation's runner process died mid-job (SIGKILL, most often the
    kernel's out-of-memory killer: the runner holds the model). Retried like a
    dead worker, within the job's attempts."""

    code = "runner_lost"


class NotFoundError(SoundForgeError):
    """No such row, or not one the user may see (both look the same on purpose)."""

    code = "not_found"

    @classmethod
    def of(cls, what: str) -> NotFoundError:
        """The one wording: another user's item reads exactly like a missing one."""
        return cls(f"This {what} does not exist or is not yours.")


class CancelledError(SoundForgeError):
    """The separation was cancelled by the user."""

    code = "cancelled"

    def __init__(self, message: str = "The separation was cancelled.") -> None:
        super().__init__(message)


class ProviderError(SoundForgeError):
    """The cloud provider refused or failed the request."""

    code = "provider_error"


class AuthError(ProviderError):
    """The provider key is missing or wrong."""

    code = "auth_error"


class QuotaError(ProviderError):
    """Not enough provider minutes left for this job."""

    code = "quota_exceeded"
