"""SoundForge: self-hostable stem separation (local Demucs or the LALAL.AI API).

The Python API lives in ``soundforge.api`` and is re-exported here lazily, so
``import soundforge`` stays cheap (no torch until a separation starts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Separator", "__version__", "export_stems", "render_mix", "separate"]
_API = ("separate", "Separator", "export_stems", "render_mix")

if TYPE_CHECKING:
    from soundforge.api import Separator, export_stems, render_mix, separate


def __getattr__(name: str) -> Any:
    if name in _API:
        from soundforge import api

        return getattr(api, name)
    raise AttributeError(name)
