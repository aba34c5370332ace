"""NI Stems (``.stem.mp4``) for Traktor, Mixxx and djay.

An NI Stems file is an MP4 with five stereo audio tracks: track 0 the master
(what an ordinary player plays), tracks 1–4 four stems, disabled so ordinary
players skip them, and a ``stem`` box in ``moov/udta`` naming and colouring
the stems (``stembox.py``).

Muxing is PyAV's (FFmpeg's AAC or ALAC encoder and MP4 muxer). AAC delays its
output by a priming frame and pads the last one; every track goes through the
same encoder settings and FFmpeg records the priming in each track's edit
list, so all five start on the same sample and decoders that honour the edit
list (FFmpeg, Traktor, Mixxx) line them up exactly. Tags and cover art are
written with mutagen.

Stems of other sets are mapped onto the four slots (``default_mapping``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
from mutagen.mp4 import MP4, MP4Cover

from soundforge.errors import InvalidOptionError, OutputError
from soundforge.export.blocks import aligned_blocks
from soundforge.export.output import staged_file
from soundforge.export.sources import StemSet
from soundforge.export.stembox import write_stem_box

SLOTS = ("drums", "bass", "other", "vocals")
SLOT_COLORS = {"drums": "#009E73", "bass": "#D55E00", "other": "#CC79A7", "vocals": "#56B4E9"}
# Stems that go to a slot of their own by default; everything else is "other".
SLOT_STEMS = {"drums": ("drums",), "bass": ("bass",), "vocals": ("vocals", "backing_vocals")}
STEM_CODECS = ("aac", "alac")
AAC_BITRATE = 256_000
STEM_SUFFIX = ".stem.mp4"
# Traktor's defaults, switched off: our master is the real mix, not a re-mastered sum.
MASTERING_DSP: dict[str, Any] = {
    "compressor": {
        "enabled": False, "input_gain": 0.5, "output_gain": 0.5, "threshold": 0.0,
        "ratio": 3.0, "attack": 0.003, "release": 0.3, "hp_cutoff": 300, "dry_wet": 50,
    },
    "limiter": {"enabled": False, "threshold": 0.0, "ceiling": -0.35, "release": 0.05},
}

SlotMapping = dict[str, tuple[str, ...]]


def default_mapping(stems: Iterable[str]) -> SlotMapping:
    """Drums, bass and vocals to their slots; everything else summed into "other"
    (guitar and piano of a 6-stem model, LALAL.AI's synth or strings, a two-stem
    job's ``no_vocals``, a multistem task's ``rest``)."""
    names = list(stems)
    mapping: SlotMapping = {slot: () for slot in SLOTS}
    for name in names:
        slot = next((s for s, members in SLOT_STEMS.items() if name in members), "other")
        mapping[slot] += (name,)
    return mapping


def parse_mapping(text: str | None, stems: Sequence[str]) -> SlotMapping:
    """``"other=other+guitar,vocals=vocals+piano"`` on top of the default mapping.

    A slot named here gets exactly the stems listed (none: a silent track); a
    stem moved to a named slot leaves the slot it had by default."""
    mapping = default_mapping(stems)
    if not text or not text.strip():
        return mapping
    changed: SlotMapping = {}
    for part in text.split(","):
        if not part.strip():
            continue
        slot, sep, members = part.partition("=")
        slot = slot.strip().lower()
        if not sep or slot not in SLOTS:
            raise InvalidOptionError(
                f"Cannot read {part.strip()!r} in the stem mapping: write SLOT=STEM+STEM with "
                f"the slots {', '.join(SLOTS)}, e.g. \"other=other+guitar+piano\"."
            )
        chosen = tuple(m.strip().lower() for m in members.split("+") if m.strip())
        unknown = [m for m in chosen if m not in stems]
        if unknown:
            raise InvalidOptionError(
                f"The stem mapping names {', '.join(unknown)}, which this separation does not "
                f"have: its stems are {', '.join(stems)}."
            )
        changed[slot] = chosen
    moved = {name for members in changed.values() for name in members}
    for slot in SLOTS:
        mapping[slot] = changed.get(
            slot, tuple(m for m in mapping[slot] if m not in moved)
        )
    used = [name for slot in SLOTS for name in mapping[slot]]
    twice = sorted({name for name in used if used.count(name) > 1})
    if twice:
        raise InvalidOptionError(
            f"The stem mapping puts {', '.join(twice)} into two slots: it would be heard twice."
        )
    return mapping


def slot_name(slot: str, members: tuple[str, ...]) -> str:
    """What Traktor shows on the slot: the stem's own name when it holds one."""
    if len(members) == 1:
        name = members[0]
        if name.startswith("no_"):
            return "No " + name[3:].replace("_", " ")
        return name.replace("_", " ").capitalize()
    return slot.capitalize()


def stem_metadata(mapping: SlotMapping) -> dict[str, Any]:
    return {
        "version": 1,
        "mastering_dsp": MASTERING_DSP,
        "stems": [
            {"name": slot_name(slot, mapping[slot]), "color": SLOT_COLORS[slot]} for slot in SLOTS
        ],
    }


@dataclass(frozen=True)
class NiStemsResult:
    path: Path
    mapping: SlotMapping
    master: str  # "original" or "sum of the stems"


def write_ni_stems(
    source: StemSet,
    target: Path,
    codec: str = "aac",
    mapping: SlotMapping | None = None,
) -> NiStemsResult:
    """Write ``target`` (a ``.stem.mp4``), staged beside it and renamed when complete."""
    if codec not in STEM_CODECS:
        raise InvalidOptionError(
            f"Unknown stem codec {codec!r}: use aac (256 kbit/s, the default) or alac (lossless)."
        )
    mapping = mapping or default_mapping(source.names)
    rate, _, frames = source.layout()
    # Decoded per step: every stem once, then the original mix if there is one.
    paths = [source.stems[name] for name in source.names]
    if source.original is not None:
        paths.append(source.original)
    slot_rows = [[source.names.index(name) for name in mapping[slot]] for slot in SLOTS]
    with staged_file(target) as staged:
        _mux(staged, codec, rate, frames, paths, slot_rows, source.original is not None)
        _write_tags(staged, source)
        write_stem_box(staged, stem_metadata(mapping))
    master = "original" if source.original is not None else "sum of the stems"
    return NiStemsResult(target, mapping, master)


def _mux(
    path: Path,
    codec: str,
    rate: int,
    frames: int,
    paths: list[Path],
    slot_rows: list[list[int]],
    has_original: bool,
) -> None:
    stem_count = len(paths) - (1 if has_original else 0)
    try:
        container = av.open(str(path), "w", format="mp4")
    except (OSError, av.error.FFmpegError) as exc:
        raise OutputError(f"Cannot write {path}: {exc}.") from None
    try:
        streams: list[av.AudioStream] = []
        for index in range(5):
            stream = cast(av.AudioStream, container.add_stream(codec, rate=rate, layout="stereo"))
            if codec == "aac":
                stream.bit_rate = AAC_BITRATE
            else:
                stream.format = "s16p"  # type: ignore[assignment]  # the stub wants an AudioFormat
            # Only the master is enabled: ordinary players play it alone.
            stream.disposition = (
                av.stream.Disposition.default if index == 0 else av.stream.Disposition(0)
            )
            streams.append(stream)
        position = 0
        for blocks in aligned_blocks(paths, rate, 2, frames):
            stems = blocks[:stem_count]
            master = blocks[-1] if has_original else _sum(stems, range(stem_count))
            tracks = [master, *[_sum(stems, rows) for rows in slot_rows]]
            for stream, audio in zip(streams, tracks, strict=True):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(np.clip(audio, -1.0, 1.0)), format="fltp",
                    layout="stereo",
                )
                frame.sample_rate = rate
                frame.pts = position
                for packet in stream.encode(frame):
                    container.mux(packet)
            position += blocks[0].shape[1]
        for stream in streams:
            for packet in stream.encode(None):
                container.mux(packet)
    except av.error.FFmpegError as exc:
        raise OutputError(f"Cannot encode {path}: {exc}.") from None
    finally:
        container.close()


def _sum(blocks: list[np.ndarray], rows: Iterable[int]) -> np.ndarray:
    total = np.zeros_like(blocks[0])
    for row in rows:
        total += blocks[row]
    return total


def _write_tags(path: Path, source: StemSet) -> None:
    tags = source.tags
    mp4 = MP4(str(path))
    if mp4.tags is None:
        mp4.add_tags()
    assert mp4.tags is not None
    mp4.tags["\xa9nam"] = [tags.title or source.track]
    if tags.artist:
        mp4.tags["\xa9ART"] = [tags.artist]
    if tags.album:
        mp4.tags["\xa9alb"] = [tags.album]
    if tags.artwork is not None:
        image_format = (
            MP4Cover.FORMAT_PNG if tags.artwork.mime == "image/png" else MP4Cover.FORMAT_JPEG
        )
        mp4.tags["covr"] = [MP4Cover(tags.artwork.data, imageformat=image_format)]
    mp4.save()
