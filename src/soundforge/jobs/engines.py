"""Routing a job to its engine, and checking a request up front.

The worker keeps one ``EngineSet`` per worker thread: one ``LocalEngine`` that
lives as long as the thread, so its Demucs runner process stays warm (the model
stays loaded between jobs), and LALAL.AI engines per key (they are HTTP clients,
cheap to keep, and a key belongs to a user).

``check_request`` is what ``create_separation_job`` runs before a row is
written: the engine's own ``validate`` (model, stems, format …), the LALAL.AI
key, and the LALAL.AI minutes (``Engine.check_quota``; free engines answer None).
Nothing here branches on an engine's class: what differs between engines is
declared by the engine registry (``uses_account``) and the engine protocol.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from soundforge.config import Settings
from soundforge.db.accounts import get_lalalai_key
from soundforge.db.models import UserSettings
from soundforge.engines.base import Engine, SeparationOptions
from soundforge.engines.lalalai.keys import resolve_key
from soundforge.engines.lalalai.ledger import UsageLedger
from soundforge.engines.local.device import RunnerPlacement
from soundforge.engines.registry import open_engine, uses_account
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


def account_key_for(
    settings: Settings, user_settings: UserSettings | None, engine: str
) -> str | None:
    """The provider key a job of ``engine`` runs with; None for an engine
    without an account (LALAL.AI is the only account engine so far)."""
    return lalalai_key_for(settings, user_settings) if uses_account(engine) else None


def build_engine(
    settings: Settings,
    engine: str,
    api_key: str | None = None,
    ledger: UsageLedger | None = None,
    placement: RunnerPlacement | None = None,
) -> Engine:
    if uses_account(engine) and not api_key:
        raise AuthError(MISSING_KEY)
    return open_engine(engine, settings, api_key=api_key, ledger=ledger, placement=placement)


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
        # Raises QuotaError (not enough minutes) or a provider error itself.
        engine.check_quota(options, duration)
        return options
    finally:
        engine.close()


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
        slot = (engine, key_ref if uses_account(engine) else "")
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
