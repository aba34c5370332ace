"""Engine names → engines. Imports are lazy so the CLI starts fast."""

from __future__ import annotations

from soundforge.config import Settings
from soundforge.engines.base import Engine
from soundforge.errors import InvalidOptionError

ENGINE_NAMES: tuple[str, ...] = ("local", "lalalai")


def create_engine(name: str, settings: Settings | None = None, **kwargs: object) -> Engine:
    if name == "local":
        from soundforge.engines.local.engine import LocalEngine

        return LocalEngine(settings, **kwargs)  # type: ignore[arg-type]
    if name == "lalalai":
        from soundforge.engines.lalalai.engine import LalalaiEngine

        return LalalaiEngine(settings, **kwargs)  # type: ignore[arg-type]
    raise InvalidOptionError(f"Unknown engine {name!r}: use {' or '.join(ENGINE_NAMES)}.")
