"""Releasing work at LALAL.AI outside a separation's own clean-up.

* ``cancel_all``: every task of a key that is in progress, in any process;
* ``cancel_tasks``: one job's tasks, from the web app;
* ``release_provider_work``: what a killed process left (unfinished tasks and
  the uploaded file), for the job pipeline's recovery and the command line's
  leftovers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import httpx
from pydantic import SecretStr

from soundforge.config import Settings
from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.engines.lalalai.engine import LalalaiEngine
from soundforge.engines.lalalai.errors import ProviderUnavailableError, RateLimitedError
from soundforge.engines.lalalai.keys import resolve_key, scrub
from soundforge.engines.lalalai.responses import CancelOutcome
from soundforge.engines.lalalai.retrying import RetryPolicy
from soundforge.errors import SoundForgeError

log = logging.getLogger(__name__)


def cancel_all(
    settings: Settings | None = None, api_key: str | SecretStr | None = None
) -> dict[str, CancelOutcome]:
    """Cancel all tasks in progress for a key (the user's, else the system one)."""
    with LalalaiEngine(settings, api_key=api_key) as engine:
        return engine.cancel_all()


def cancel_tasks(
    settings: Settings | None, api_key: str | SecretStr | None, task_ids: Sequence[str]
) -> dict[str, CancelOutcome]:
    """Cancel these tasks at LALAL.AI now (one job's, from the web app); the
    outcome per task says whether the provider stopped it."""
    if not task_ids:
        return {}
    with LalalaiEngine(settings, api_key=api_key) as engine:
        return engine.client.cancel(list(task_ids))


# A dead run's clean-up happens in a worker's reconciler, which must not hang
# on an unreachable provider for minutes: two quick tries, then give up (the
# provider expires the file on its own).
# Two tries, briefly: what fails is recorded and retried later with backoff.
RELEASE_ATTEMPTS = 2
RELEASE_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass(frozen=True)
class ReleaseOutcome:
    """What ``release_provider_work`` achieved, for logs and job messages."""

    cancelled: tuple[str, ...] = ()
    # Tasks the provider would not cancel, with its reason (most often: it had
    # already finished, which is fine: finished tasks cost nothing more).
    not_cancelled: Mapping[str, str] = field(default_factory=dict)
    source_deleted: bool = False
    # Requests that failed altogether (network, key refused …), in words.
    errors: tuple[str, ...] = ()
    # What is still held at the provider because it could not be reached (an
    # outage, not a refusal): worth trying again later.
    retry_tasks: tuple[str, ...] = ()
    retry_source: str | None = None

    @property
    def complete(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One or two sentences a person can read on the job."""
        parts: list[str] = []
        if self.cancelled:
            parts.append(f"cancelled {len(self.cancelled)} unfinished task(s)")
        if self.not_cancelled:
            parts.append(f"found {len(self.not_cancelled)} task(s) already ended")
        if self.source_deleted:
            parts.append("deleted the uploaded file")
        text = f"At LALAL.AI, SoundForge {_join(parts)}." if parts else ""
        if self.errors:
            problem = (
                "Could not clean up at LALAL.AI (" + "; ".join(self.errors) + "): the tasks may "
                "run to their end, and the provider deletes the file itself when it expires."
            )
            text = f"{text} {problem}".strip()
        return text


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def release_provider_work(
    settings: Settings,
    api_key: str | SecretStr | None,
    task_ids: Sequence[str],
    source_id: str | None,
    *,
    retry: RetryPolicy | None = None,
    timeout: httpx.Timeout | None = None,
) -> ReleaseOutcome:
    """Cancel the unfinished ``task_ids`` and delete ``source_id`` at LALAL.AI,
    for a separation whose process died (its own clean-up never ran).

    Best effort: never raises for what the provider or the network does; the
    outcome says what happened. ``api_key`` goes through the same precedence as
    the engine's (given key, ``LALALAI_API_KEY``, system key); without any key
    nothing is sent.
    """
    key = resolve_key(api_key, settings)
    if key is None:
        return ReleaseOutcome(errors=("no LALAL.AI key is configured",))
    if not task_ids and not source_id:
        return ReleaseOutcome()
    cancelled: list[str] = []
    not_cancelled: dict[str, str] = {}
    errors: list[str] = []
    deleted = False
    retry_tasks: tuple[str, ...] = ()
    retry_source: str | None = None
    retry = retry or replace(
        RetryPolicy.for_settings(settings.lalalai_retry_base_delay), attempts=RELEASE_ATTEMPTS
    )
    with LalalaiClient(
        settings.lalalai_url, key, retry=retry, timeout=timeout or RELEASE_TIMEOUT
    ) as client:
        if task_ids:
            try:
                outcomes = client.cancel(list(task_ids))
            except SoundForgeError as exc:
                errors.append(f"cancel: {scrub(exc.message, key)}")
                if isinstance(exc, ProviderUnavailableError | RateLimitedError):
                    retry_tasks = tuple(task_ids)
            else:
                for task_id in task_ids:
                    answer = outcomes.get(task_id)
                    if answer is not None and answer.ok:
                        cancelled.append(task_id)
                    else:
                        reason = answer.error if answer is not None else None
                        not_cancelled[task_id] = scrub(reason or "no answer", key)
        # After the cancel, not instead of it: deleting the source also stops
        # its tasks at LALAL.AI, but only the cancel tells us which ones ran.
        if source_id:
            try:
                client.delete(source_id)
                deleted = True
            except SoundForgeError as exc:
                errors.append(f"delete: {scrub(exc.message, key)}")
                if isinstance(exc, ProviderUnavailableError | RateLimitedError):
                    retry_source = source_id
    outcome = ReleaseOutcome(tuple(cancelled), not_cancelled, deleted, tuple(errors),
                             retry_tasks, retry_source)
    log.info(
        "LALAL.AI: released a stopped run's work: %d cancelled, %d already ended, source %s%s",
        len(outcome.cancelled), len(outcome.not_cancelled),
        "deleted" if deleted else "kept", f"; errors: {'; '.join(errors)}" if errors else "",
    )
    return outcome
