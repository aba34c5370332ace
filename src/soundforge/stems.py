"""One stem vocabulary across both engines (see DESIGN.md, "Stem names").

Demucs names its sources ``drums bass other vocals`` (+ ``guitar piano`` for the
six-stem model); LALAL.AI offers ten stem types. Each engine maps its own names
to these; the rest of the product only ever sees these.
"""

from __future__ import annotations

DEMUCS_STEMS: tuple[str, ...] = ("vocals", "drums", "bass", "other", "guitar", "piano")

LALALAI_STEMS: tuple[str, ...] = (
    "vocals",
    "drums",
    "bass",
    "electric_guitar",
    "acoustic_guitar",
    "piano",
    "synth",
    "strings",
    "wind",
    "backing_vocals",
)

# What is left of the mix without a stem ("karaoke" for vocals).
COMPLEMENT_PREFIX = "no_"
# The rest of the mix after a multistem task: everything not asked for.
REST = "rest"


def complement(stem: str) -> str:
    """``vocals`` → ``no_vocals``."""
    return COMPLEMENT_PREFIX + stem


def is_complement(name: str) -> bool:
    return name.startswith(COMPLEMENT_PREFIX)


def parse_stem_list(text: str | None) -> tuple[str, ...] | None:
    """``"vocals, drums"`` → ``("vocals", "drums")``; empty or None → None (all stems)."""
    if text is None:
        return None
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    return names or None
