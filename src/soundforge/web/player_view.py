"""What the stem player shows for a separation, and in which order.

Stems play in a musical order (vocals, drums, bass, then the others) instead
of alphabetically. Complements (``no_<stem>``, LALAL.AI's ``rest``, "without
lead vocals") are the mix minus something: played together with the stems
they double what the stems already hold (an outside walk-through heard 13
rows for 7 requested stems, all at once). So they are a group of their own,
muted by default whenever the separation has more than one stem; with a
single stem (karaoke: vocals + without vocals) the two add up to the mix and
both play.
"""

from __future__ import annotations

from dataclasses import dataclass

from soundforge.db import ProcessingJob, Stem
from soundforge.stems import REST, is_complement

# Lead and backing vocals stay beside the vocals; Demucs' "other" (what no
# other source took) comes last.
STEM_ORDER: tuple[str, ...] = (
    "vocals", "lead_vocals", "drums", "bass", "backing_vocals", "guitar",
    "electric_guitar", "acoustic_guitar", "piano", "synth", "strings", "wind", "other",
)


def stem_sort_key(name: str) -> tuple[int, int, str]:
    """Musical order; complements after the stems, in the order of what they
    lack, ``rest`` last; unknown names alphabetically after the known ones."""
    complement = is_complement(name) or name == REST
    base = name[3:] if is_complement(name) else name
    rank = STEM_ORDER.index(base) if base in STEM_ORDER else len(STEM_ORDER)
    if name == REST:
        rank = len(STEM_ORDER) + 1
    return (1 if complement else 0, rank, base)


@dataclass(frozen=True)
class PlayerView:
    stems: list[Stem]
    complements: list[Stem]

    @property
    def mute_complements(self) -> bool:
        return len(self.stems) > 1

    @property
    def rows(self) -> int:
        """Rows that load audio: the stems, the complements and the original mix."""
        return len(self.stems) + len(self.complements) + 1


def player_view(job: ProcessingJob) -> PlayerView:
    ordered = sorted(job.stems, key=lambda stem: stem_sort_key(stem.stem_type))
    return PlayerView(
        stems=[s for s in ordered if stem_sort_key(s.stem_type)[0] == 0],
        complements=[s for s in ordered if stem_sort_key(s.stem_type)[0] == 1],
    )
