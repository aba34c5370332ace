"""Engine names → engines. Imports are lazy so the CLI starts fast.

What differs between the engines when a caller builds one is said here, as
data, so that callers (the worker above all) never branch on an engine's name
or class:

* ``ACCOUNT_ENGINES``: engines that run on a provider account. They need the
  account's key (one engine per key), and what they start at the provider is
  recorded on the job so that it can be released if the process dies;
* ``open_engine``: builds an engine from everything a long-lived caller holds
  (a key, a usage ledger, a runner placement); each engine takes what applies
  to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from soundforge.config import Settings
from soundforge.engines.base import Engine
from soundforge.errors import InvalidOptionError

if TYPE_CHECKING:
    from soundforge.engines.lalalai.ledger import UsageLedger
    from soundforge.engines.local.device import RunnerPlacement

ENGINE_NAMES: tuple[str, ...] = ("local", "lalalai")
ACCOUNT_ENGINES: frozenset[str] = frozenset({"lalalai"})


def uses_account(name: str) -> bool:
    """Whether engine ``name`` runs on a provider account (and needs its key)."""
    return name in ACCOUNT_ENGINES


def create_engine(name: str, settings: Settings | None = None, **kwargs: object) -> Engine:
    """Engine ``name`` built with its own constructor's keyword arguments."""
    if name == "local":
        from soundforge.engines.local.engine import LocalEngine

        return LocalEngine(settings, **kwargs)  # type: ignore[arg-type]
    if name == "lalalai":
        from soundforge.engines.lalalai.engine import LalalaiEngine

        return LalalaiEngine(settings, **kwargs)  # type: ignore[arg-type]
    raise InvalidOptionError(f"Unknown engine {name!r}: use {' or '.join(ENGINE_NAMES)}.")


def open_engine(
    name: str,
    settings: Settings,
    *,
    api_key: str | None = None,
    ledger: UsageLedger | None = None,
    placement: RunnerPlacement | None = None,
) -> Engine:
    """Engine ``name`` for a caller that holds all of these: an account engine
    gets the key and the ledger, the local engine the runner placement."""
    if uses_account(name):
        return create_engine(name, settings, api_key=api_key, ledger=ledger)
    if name == "local" and placement is not None:
        return create_engine(name, settings, placement=placement)
    return create_engine(name, settings)
