"""How hard SoundForge tries a LALAL.AI request or download, in one place.

``RetryPolicy`` says how many tries and how long to wait between them;
``retrying`` turns it into a tenacity loop whose waits end early, with
``CancelledError``, when the run's ``CancelToken`` is set. The API client, the
track downloader and the ``/check/`` poller's back-off all use this policy, so
``SOUNDFORGE_LALALAI_RETRY_BASE_DELAY`` governs every one of them.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from soundforge.engines.base import CancelToken
from soundforge.errors import CancelledError

# Network failures worth another try. Not UnsupportedProtocol / InvalidURL /
# LocalProtocolError: those are configuration or programming errors.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``attempts`` counts the first try; the n-th retry waits
    a random time in [cap/2, cap] with cap = min(max_delay, base_delay·2ⁿ⁻¹)
    (jitter keeps many workers from retrying in lock-step)."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, retry: int, floor: float = 0.0) -> float:
        """The wait before retry number ``retry`` (1 for the first); ``floor``
        raises the first delay (the poller never checks faster than its interval)."""
        start = max(floor, self.base_delay)
        # With a floor, never less than one interval even above max_delay.
        ceiling = max(self.max_delay, start) if floor else self.max_delay
        cap = min(ceiling, start * (2 ** max(retry - 1, 0)))
        return random.uniform(cap / 2, cap)

    @classmethod
    def for_settings(cls, base_delay: float) -> RetryPolicy:
        """The default policy with the installation's first delay
        (``SOUNDFORGE_LALALAI_RETRY_BASE_DELAY``)."""
        return cls(base_delay=base_delay, max_delay=max(cls.max_delay, base_delay))


def retrying(
    policy: RetryPolicy,
    cancel: CancelToken | None,
    retry_on: tuple[type[BaseException], ...],
) -> Retrying:
    """Up to ``policy.attempts`` calls of a function that raises one of
    ``retry_on`` when another try is worth it; the last such error is raised
    again when no try is left. Any other exception ends the loop at once. Use
    as ``retrying(policy, cancel, (SomeError,))(one_try)``."""

    def wait(state: RetryCallState) -> float:
        return policy.delay(state.attempt_number)

    def sleep(seconds: float) -> None:
        if cancel is None:
            time.sleep(seconds)
        elif cancel.wait(seconds):
            raise CancelledError()

    return Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_exception_type(retry_on),
        sleep=sleep,
        reraise=True,
    )

