"""Routing a job to its engine, and checking a request up front.

The worker keeps one ``EngineSet`` per worker thread: one ``LocalEngine`` that
lives as long as the thread, so its Demucs runner process stays warm (the model
stays loaded between jobs), and LALAL.AI engines per key (they are HTTP clients,
cheap to keep, and a key belongs to a user).

``check_request`` is what ``create_separation_job`` runs before a row is
written: the engine's own ``validate`` (model, stems, format …), the LALAL.AI
key, and the LALAL.AI minutes when the engine can tell them.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from typing import Any

from soundforge.config import Settings
from soundforge.db.accounts import get_lalalai_key
from soundforge.db.models import UserSettings
from soundforge.engines.base import Engine, SeparationOptions
from soundforge.engines.lalalai.keys import resolve_key
from soundforge.engines.lalalai.ledger import UsageLedger
from soundforge.engines.local.device import RunnerPlacement
from soundforge.engines.registry import create_engine
from soundforge.errors import AuthError

log = logging.getLogger(__name__)

MISSING_KEY = (
    "LALAL.AI needs a license key: add yours under Settings → Cloud Separation "
    "(or ask the administrator to set SYSTEM_LALALAI_ACTIVATION_KEY)."
)


def lalalai_key_for(settings: Settings, user_settings: UserSettings | None) -> str | None:
    """The key a user's LALAL.AI job uses: their own, else the installation's."""
    # The precedence rule lives in the engine's keys module; the user's stored
    # key is just the most specific candidate.
    key = resolve_key(get_lalalai_key(settings, user_settings), settings)
    return key.get_secret_value() if key is not None else None


def build_engine(
    settings: Settings,
    engine: str,
    api_key: str | None = None,
    ledger: UsageLedger | None = None,
    placement: RunnerPlacement | None = None,
) -> Engine:
    if engine == "lalalai":
        if not api_key:
            raise AuthError(MISSING_KEY)
        return create_engine("lalalai", settings, api_key=api_key, ledger=ledger)
    if engine == "local" and placement is not None:
        return create_engine(engine, settings, placement=placement)
    return create_engine(engine, settings)


def check_request(
    settings: Settings,
    engine_name: str,
    options: SeparationOptions,
    *,
    api_key: str | None,
    duration: float,
) -> SeparationOptions:
    """Everything that can be known before the job runs; returns normalised options."""
    engine = build_engine(settings, engine_name, api_key)
    try:
        options = engine.validate(options)
        _check_minutes(engine, options, duration)
        return options
    finally:
        engine.close()


def _check_minutes(engine: Engine, options: SeparationOptions, duration: float) -> None:
    """Ask the engine whether the provider account can pay for this job.

    Only engines that bill offer ``check_quota(options, duration)``; it raises
    ``QuotaError`` (not enough minutes) or a provider error itself.
    """
    check = getattr(engine, "check_quota", None)
    if check is None or not callable(check):
        return
    params = inspect.signature(check).parameters
    if "duration" in params:
        check(options, duration=duration)
    else:
        check(options, duration)


class EngineSet:
    """The engines of one worker thread, created on first use and kept."""

    def __init__(
        self,
        settings: Settings,
        ledger: UsageLedger | None = None,
        placement: RunnerPlacement | None = None,
    ) -> None:
        self.settings = settings
        # The worker's database: LALAL.AI minutes go to the shared ledger.
        self.ledger = ledger
        self.placement = placement
        self._engines: dict[tuple[str, str], Engine] = {}

    def get(self, engine: str, api_key: str | None = None) -> Engine:
        key_ref = hashlib.sha256(api_key.encode()).hexdigest() if api_key else ""
        slot = (engine, key_ref if engine == "lalalai" else "")
        found = self._engines.get(slot)
        if found is None:
            found = build_engine(self.settings, engine, api_key, self.ledger, self.placement)
            self._engines[slot] = found
        return found

    def discard(self, engine: str) -> None:
        """Close and forget engines of one kind (after a failure that may have left
        them in a bad state; the next job gets a fresh one)."""
        for slot in [slot for slot in self._engines if slot[0] == engine]:
            self._close(self._engines.pop(slot))

    def close(self) -> None:
        while self._engines:
            _, engine = self._engines.popitem()
            self._close(engine)

    @staticmethod
    def _close(engine: Any) -> None:
        try:
            engine.close()
        except Exception as exc:  # a failing close must not stop the others
            log.warning("closing engine %s failed: %s", getattr(engine, "name", engine), exc)
