"""The ``lalalai`` engine: the same interface as the local engine, backed by
the LALAL.AI v1 API.

``LalalaiEngine`` checks options, holds the pieces that outlive one separation
(the API client, the track downloader, the usage ledger, the shared poller)
and answers questions about the account (minutes left, cost, quota). One
separation is a ``run.SeparationRun``, which documents its steps. Releasing
work at the provider outside a run (cancel-all, one job's tasks, what a killed
process left) is ``release.py``.

``separate(..., hooks=RunHooks(on_provider_work=…))`` reports the provider's
source id and task ids as soon as each exists, so a caller can record them; if
this process is killed, ``release.release_provider_work`` lets another one
cancel and delete them. The result's ``provider_work`` holds the final ids.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from soundforge.audio.probe import probe
from soundforge.config import Settings, get_settings
from soundforge.engines.base import (
    CancelToken,
    MonotonicProgress,
    ProgressCallback,
    ProviderWorkCallback,
    RunHooks,
    SeparationOptions,
    SeparationResult,
    validate_common,
)
from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.engines.lalalai.download import TrackDownloader
from soundforge.engines.lalalai.keys import key_id, require_key, resolve_key
from soundforge.engines.lalalai.ledger import DatabaseUsageLedger, UsageLedger
from soundforge.engines.lalalai.poller import (
    CHECK_LIMIT,
    CHECK_WINDOW,
    CheckPoller,
    limiter_for,
    poller_for,
)
from soundforge.engines.lalalai.preview import PREVIEW_SECONDS
from soundforge.engines.lalalai.quota import (
    billable_seconds,
    ensure_minutes,
    get_quota,
    minutes_for,
)
from soundforge.engines.lalalai.responses import CancelOutcome
from soundforge.engines.lalalai.retrying import RetryPolicy
from soundforge.engines.lalalai.run import RunServices, SeparationRun
from soundforge.engines.lalalai.stems import (
    PHOENIX_ONLY_STEMS,
    check_stems,
    plan_tasks,
    total_stems,
)
from soundforge.errors import InvalidOptionError

log = logging.getLogger(__name__)

SPLITTERS: tuple[str, ...] = ("auto", "andromeda", "perseus", "orion", "phoenix", "lyra", "lynx")
EXTRACTION_LEVELS: dict[str, str] = {
    "deep_extraction": "deep_extraction",
    "deep": "deep_extraction",
    "clear_cut": "clear_cut",
    "clear": "clear_cut",
}


class LalalaiEngine:
    """Stem separation on LALAL.AI. Thread-safe: one engine may run several
    separations at once (each call keeps its own state)."""

    name = "lalalai"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        api_key: str | SecretStr | None = None,
        retry: RetryPolicy | None = None,
        poll_interval: float | None = None,
        check_limit: int = CHECK_LIMIT,
        check_window: float = CHECK_WINDOW,
        timeout: httpx.Timeout | None = None,
        ledger: UsageLedger | None = None,
        preview_seconds: float = PREVIEW_SECONDS,
        on_tasks: ProviderWorkCallback | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._key = resolve_key(api_key, self.settings)
        self.retry = retry or RetryPolicy.for_settings(self.settings.lalalai_retry_base_delay)
        self.poll_interval = poll_interval or self.settings.lalalai_poll_interval
        self.check_limit = check_limit
        self.check_window = check_window
        self.timeout = timeout
        # Opened on first use: checking a request needs no ledger.
        self._ledger: UsageLedger | None = ledger
        self._owned_ledger: DatabaseUsageLedger | None = None
        self.preview_seconds = preview_seconds
        # For every separation that is not given its own (the command line
        # records its provider work this way; see leftovers.py).
        self.on_tasks = on_tasks
        self._client: LalalaiClient | None = None
        self._downloader: TrackDownloader | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "key set" if self._key is not None else "no key"
        return f"LalalaiEngine(url={self.settings.lalalai_url!r}, {state})"

    # --- pieces, created on first use --------------------------------------

    @property
    def client(self) -> LalalaiClient:
        """The API client; raises ``AuthError`` (saying how to set one) without a key."""
        key = require_key(self._key, self.settings)
        with self._lock:
            if self._client is None:
                self._client = LalalaiClient(
                    self.settings.lalalai_url, key, retry=self.retry, timeout=self.timeout
                )
            return self._client

    @property
    def downloader(self) -> TrackDownloader:
        with self._lock:
            if self._downloader is None:
                self._downloader = TrackDownloader(self.retry, self.timeout)
            return self._downloader

    def _poller(self) -> CheckPoller:
        key = require_key(self._key, self.settings)
        fingerprint = key_id(key)
        url, retry, timeout = self.settings.lalalai_url, self.retry, self.timeout

        def make_client() -> LalalaiClient:
            # Not a closure over self: the process-wide poller outlives engines.
            return LalalaiClient(url, key, retry=retry, timeout=timeout)

        limiter = limiter_for(fingerprint, self.check_limit, self.check_window)
        return poller_for(url, fingerprint, make_client, limiter, self.poll_interval, retry)

    # --- the engine interface ----------------------------------------------

    def validate(self, options: SeparationOptions) -> SeparationOptions:
        validate_common(options)
        changes: dict[str, Any] = {}
        if options.stems is not None:
            changes["stems"] = check_stems(options.stems)
        if options.two_stems is not None:
            (changes["two_stems"],) = check_stems([options.two_stems])
        tasks = plan_tasks(
            changes.get("stems", options.stems), changes.get("two_stems", options.two_stems)
        )
        if options.splitter is not None:
            splitter = options.splitter.strip().lower()
            if splitter not in SPLITTERS:
                raise InvalidOptionError(
                    f"Unknown LALAL.AI splitter {options.splitter!r}: use {', '.join(SPLITTERS)}."
                )
            needs_phoenix = sorted(
                {stem for task in tasks for stem in task.wanted} & PHOENIX_ONLY_STEMS
            )
            if needs_phoenix and splitter not in ("auto", "phoenix"):
                raise InvalidOptionError(
                    f"LALAL.AI extracts {', '.join(needs_phoenix)} only with the phoenix "
                    f"splitter, not {splitter}: use --splitter phoenix or auto."
                )
            changes["splitter"] = splitter
        if options.extraction_level is not None:
            level = options.extraction_level.strip().lower().replace("-", "_")
            if level not in EXTRACTION_LEVELS:
                raise InvalidOptionError(
                    f"Unknown extraction level {options.extraction_level!r}: use "
                    "deep_extraction or clear_cut."
                )
            changes["extraction_level"] = EXTRACTION_LEVELS[level]
        if options.noise_cancelling:
            raise InvalidOptionError(
                "LALAL.AI's API offers noise cancelling only in its voice-cleaning mode, "
                "not for stem separation; leave noise cancelling off for this engine."
            )
        if not 1 <= self.preview_seconds <= 600:
            raise InvalidOptionError("The preview length must be between 1 and 600 seconds.")
        return options.with_changes(**changes) if changes else options

    def separate(
        self,
        input_path: Path,
        options: SeparationOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        destination: Path | None = None,
        hooks: RunHooks | None = None,
    ) -> SeparationResult:
        """``Engine.separate``. Of the ``hooks``: ``on_provider_work`` is told the
        source id and task ids as soon as they exist (if it raises, the
        separation stops and cleans up as for any other error); ``on_unreleased``
        is told what the clean-up could not release at the provider (it was
        unreachable): unfinished tasks not cancelled, the uploaded file not
        deleted (``source_id`` empty when it was); ``upload_name`` is the file's
        name at LALAL.AI, shown in the user's dashboard there (default: the
        input's own name; the web app stores every track as ``original.<ext>``
        and passes the track's title)."""
        if destination is None:
            raise InvalidOptionError("No destination folder given for the stems.")
        options = self.validate(options)
        hooks = hooks or RunHooks()
        client = self.client  # no key: AuthError before any work
        cancel = cancel or CancelToken()
        progress = MonotonicProgress(on_progress)
        progress(0)
        input_path = Path(input_path)
        info = probe(input_path)
        cancel.raise_if_cancelled()
        run = SeparationRun(
            services=RunServices(
                client=client,
                downloader=self.downloader,
                ledger=lambda: self.ledger,
                poller=self._poller,
                key=self._key,
                poll_interval=self.poll_interval,
                preview_seconds=self.preview_seconds,
            ),
            input_path=input_path,
            info=info,
            options=options,
            cancel=cancel,
            progress=progress,
            upload_name=hooks.upload_name or input_path.name,
            on_provider_work=hooks.on_provider_work or self.on_tasks,
            on_unreleased=hooks.on_unreleased,
        )
        return run.execute(Path(destination))

    @property
    def ledger(self) -> UsageLedger:
        """Where charged minutes are recorded: the installation's database."""
        with self._lock:
            if self._ledger is None:
                self._owned_ledger = DatabaseUsageLedger.for_settings(self.settings)
                self._ledger = self._owned_ledger
            return self._ledger

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            downloader, self._downloader = self._downloader, None
            ledger, self._owned_ledger = self._owned_ledger, None
            if ledger is not None:
                self._ledger = None
        if client is not None:
            client.close()
        if downloader is not None:
            downloader.close()
        if ledger is not None:
            ledger.close()

    def __enter__(self) -> LalalaiEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- beyond the interface: quota and cancel-all -------------------------

    def minutes_left(self) -> float:
        return self.client.minutes_left()

    def billed(self, options: SeparationOptions, duration: float) -> tuple[float, int]:
        """The seconds and the stems a separation of a ``duration``-second track
        is charged for (a preview is charged for its cut only)."""
        options = self.validate(options)
        seconds = min(duration, self.preview_seconds) if options.preview else duration
        return seconds, total_stems(plan_tasks(options.stems, options.two_stems))

    def cost(self, options: SeparationOptions, duration: float) -> float:
        """Minutes a separation of a ``duration``-second track would cost."""
        return minutes_for(*self.billed(options, duration))

    def check_quota(self, options: SeparationOptions, duration: float) -> float:
        """Raise ``QuotaError`` when the key cannot pay for this separation (the
        job pipeline calls this before it queues a job); returns the cost."""
        seconds, stems = self.billed(options, duration)
        needed = minutes_for(seconds, stems)
        ensure_minutes(needed, self.client.minutes_left(), duration=seconds, stems=stems)
        return needed

    def quota(self) -> dict[str, float]:
        """The seed's ``{"quota_minutes", "used_minutes", "remaining_minutes"}``."""
        return get_quota(self.settings, self._key, self.ledger, self.client)

    def cancel_all(self) -> dict[str, CancelOutcome]:
        """Cancel every task of this key that is in progress, in any process
        (``/cancel/all/``). Separations waiting on them end with
        ``CancelledError`` and clean up after themselves."""
        outcomes = self.client.cancel_all()
        log.info("LALAL.AI: cancel-all stopped %d task(s)",
                 sum(1 for outcome in outcomes.values() if outcome.ok))
        return outcomes


def estimate(
    settings: Settings | None, options: SeparationOptions, duration: float
) -> dict[str, Any]:
    """``{"minutes", "seconds", "stems"}`` a separation of a ``duration``-second
    track would cost; no key needed, nothing sent (the web form's estimate)."""
    seconds, stems = LalalaiEngine(settings).billed(options, duration)
    return {"minutes": round(minutes_for(seconds, stems), 2),
            "seconds": billable_seconds(seconds), "stems": stems}
