"""Render a mix of stems to one file, with the web player's rules.

The player (``web/static/player.js``) gives each stem a volume, a mute and a
solo switch, and has a master volume. What a stem contributes is decided here
once, for the CLI, the API and the page's "Export this mix" alike:

* with any stem soloed, only soloed stems sound (solo beats mute);
* otherwise every stem that is not muted sounds;
* a stem that sounds is scaled by its volume, then everything by the master.

The render streams: every stem is read block by block in lockstep, summed with
its gain and encoded, so memory stays flat however long the track.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soundforge.audio.writer import StemWriter
from soundforge.errors import InvalidOptionError
from soundforge.export.blocks import aligned_blocks
from soundforge.export.output import staged_file
from soundforge.export.sources import StemSet

MIX_FORMATS = ("wav", "flac", "mp3")
# The player's sliders run from 0 to 100 %.
MAX_GAIN = 1.0
VOCAL_STEMS = ("vocals", "backing_vocals")


@dataclass(frozen=True)
class MixState:
    """The player's state: volumes (1 when not given), muted and soloed stems, master."""

    gains: Mapping[str, float] = field(default_factory=dict)
    muted: frozenset[str] = frozenset()
    soloed: frozenset[str] = frozenset()
    master: float = 1.0

    def effective_gains(self, stems: Iterable[str]) -> dict[str, float]:
        """What each stem is multiplied by in the mix (0 for a silent one)."""
        any_solo = bool(self.soloed)
        result: dict[str, float] = {}
        for stem in stems:
            audible = stem in self.soloed if any_solo else stem not in self.muted
            result[stem] = self.master * self.gains.get(stem, 1.0) if audible else 0.0
        return result

    def check_against(self, stems: Iterable[str]) -> None:
        """Refuse stems the separation does not have, and gains out of range."""
        available = list(stems)
        named = set(self.gains) | self.muted | self.soloed
        unknown = sorted(named - set(available))
        if unknown:
            raise InvalidOptionError(
                f"This separation has no {', '.join(unknown)} stem: "
                f"its stems are {', '.join(available)}."
            )
        for name, gain in [*self.gains.items(), ("master", self.master)]:
            if not 0.0 <= gain <= MAX_GAIN:
                raise InvalidOptionError(
                    f"The volume of {name} is {gain:g}: use a number from 0 to 1 "
                    "(0.5 is half, as on the player's slider at 50 %)."
                )
        if not any(self.effective_gains(available).values()):
            raise InvalidOptionError(
                "This mix is silent: every stem is muted or at volume 0. Unmute a stem."
            )


def parse_gains(text: str | None) -> dict[str, float]:
    """``"vocals=0, drums=0.5"`` → ``{"vocals": 0.0, "drums": 0.5}``."""
    gains: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        try:
            if not sep or not name:
                raise ValueError
            gains[name] = float(value)
        except ValueError:
            raise InvalidOptionError(
                f"Cannot read {part.strip()!r} in the mix: write STEM=VOLUME pairs separated "
                'by commas, e.g. "vocals=0,drums=0.5".'
            ) from None
    return gains


def parse_names(text: str | None) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in (text or "").split(",") if part.strip())


# Name → label on the player's buttons. Instrumental: everything but vocals;
# a cappella: vocals only; drumless and bassless: everything but that stem.
PRESETS: dict[str, str] = {
    "instrumental": "Instrumental",
    "acappella": "A cappella",
    "drumless": "Drumless",
    "bassless": "Bassless",
}


def preset_state(preset: str, stems: Iterable[str]) -> MixState:
    """A preset as a player state, for a separation with these stems."""
    available = list(stems)
    key = preset.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    vocals = frozenset(name for name in available if name in VOCAL_STEMS)
    wanted = {"instrumental": "vocals", "acappella": "vocals", "drumless": "drums",
              "bassless": "bass"}
    if key not in wanted:
        raise InvalidOptionError(
            f"Unknown mix preset {preset!r}: use {', '.join(PRESETS)}."
        )
    needed = wanted[key]
    if needed not in available:
        raise InvalidOptionError(
            f"The {key} preset needs a {needed} stem, and this separation has only "
            f"{', '.join(available)}. Set the mix by hand, or separate with a model that "
            f"gives {needed}."
        )
    if key == "instrumental":
        return MixState(muted=vocals)
    if key == "acappella":
        return MixState(soloed=vocals)
    return MixState(muted=frozenset({needed}))


def requested_state(
    stems: Iterable[str],
    *,
    preset: str | None,
    mix: str | None,
    mute: str | None,
    solo: str | None,
    master: float,
    fmt: str,
) -> MixState:
    """The mix a request asks for (a preset, or volumes, mutes and solos, with
    the master), checked against the stems there are and the output format.
    The CLI and the web take the same words, so they share this."""
    names = list(stems)
    if fmt.lower() not in MIX_FORMATS:
        raise InvalidOptionError(f"Unknown mix format {fmt!r}: use {', '.join(MIX_FORMATS)}.")
    if preset and (mix or mute or solo):
        raise InvalidOptionError(
            "A preset sets the whole mix: give it alone, or mix, mute and solo without it."
        )
    state = (
        preset_state(preset, names)
        if preset
        else MixState(parse_gains(mix), parse_names(mute), parse_names(solo))
    )
    state = MixState(state.gains, state.muted, state.soloed, master)
    state.check_against(names)
    return state


def available_presets(stems: Iterable[str]) -> list[str]:
    """The presets that make sense for a separation with these stems."""
    names = set(stems)
    result = []
    for preset in PRESETS:
        try:
            state = preset_state(preset, names)
            state.check_against(names)
        except InvalidOptionError:
            continue
        result.append(preset)
    return result


def render_mix(
    source: StemSet,
    state: MixState,
    target: Path,
    fmt: str = "wav",
    wav_depth: str = "16",
    mp3_bitrate: int = 320,
) -> Path:
    """Write the mix to ``target`` (staged beside it, renamed when complete)."""
    if fmt not in MIX_FORMATS:
        raise InvalidOptionError(f"Unknown mix format {fmt!r}: use {', '.join(MIX_FORMATS)}.")
    state.check_against(source.names)
    gains = state.effective_gains(source.names)
    # Silent stems are not even decoded.
    paths = [source.stems[name] for name in source.names if gains[name]]
    weights = [np.float32(gains[name]) for name in source.names if gains[name]]
    rate, channels, frames = source.layout()
    with staged_file(target) as staged:
        writer = StemWriter(staged, fmt, rate, channels, rate, channels, wav_depth, mp3_bitrate)
        try:
            for blocks in aligned_blocks(paths, rate, channels, frames):
                mix = blocks[0] * weights[0]
                for block, weight in zip(blocks[1:], weights[1:], strict=True):
                    mix += block * weight
                writer.write(mix)
            writer.finish(round(frames * writer.sample_rate / rate))
        except BaseException:
            writer.abort()
            raise
    return target
