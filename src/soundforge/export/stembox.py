"""The ``stem`` box of an NI Stems file: JSON in ``moov/udta/stem``.

No maintained Python library writes it: mutagen writes iTunes tags (``ilst``)
but drops unknown boxes from its API, stempeg shells out to GPAC's MP4Box, and
stemgen goes through TagLib's C++ API. So this is a small writer of our own,
checked in the tests with a parser that is not ours (mutagen's atom reader)
and by stempeg/ffprobe opening the result.

It relies on one property of the files our muxer writes: ``moov`` is the last
top-level box (FFmpeg writes it after ``mdat`` unless asked for "faststart").
Growing the last box moves no sample data, so no chunk offset changes. A file
laid out otherwise is refused rather than corrupted.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from soundforge.errors import OutputError

HEADER = struct.Struct(">I4s")


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """``(type, offset, size)`` of the boxes laid end to end in ``data[start:end]``."""
    end = len(data) if end is None else end
    found = []
    offset = start
    while offset + HEADER.size <= end:
        kind, size = _box_header(data, offset, offset, end)
        found.append((kind, offset, size))
        offset += size
    return found


def _box_header(head: bytes, at: int, offset: int, end: int, where: str = "") -> tuple[bytes, int]:
    """``(type, size)`` of the box whose header is ``head[at:]``; the box starts at
    byte ``offset`` of a file or box that ends at ``end``. A 64-bit size (1) and
    "up to the end" (0) are resolved; a size that does not fit is refused."""
    size, kind = HEADER.unpack_from(head, at)
    if size == 1:
        size = struct.unpack_from(">Q", head, at + 8)[0]
    elif size == 0:
        size = end - offset
    if size < HEADER.size or offset + size > end:
        raise OutputError(f"{where}The MP4 box {kind!r} at byte {offset} is damaged.")
    return kind, size


def box(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(HEADER.size + len(payload), kind) + payload


def stem_box(metadata: dict[str, Any]) -> bytes:
    return box(b"stem", json.dumps(metadata, separators=(",", ":")).encode())


def _top_level(path: Path) -> list[tuple[bytes, int, int]]:
    """Top-level boxes, read header by header (mdat is not loaded)."""
    found = []
    size_total = path.stat().st_size
    with path.open("rb") as handle:
        offset = 0
        while offset + HEADER.size <= size_total:
            handle.seek(offset)
            head = handle.read(16)
            kind, size = _box_header(head, 0, offset, size_total, where=f"{path}: ")
            found.append((kind, offset, size))
            offset += size
    return found


def write_stem_box(path: Path, metadata: dict[str, Any]) -> None:
    """Put ``metadata`` into ``moov/udta/stem`` of ``path`` (replacing one there)."""
    boxes = _top_level(path)
    if not boxes or boxes[-1][0] != b"moov":
        raise OutputError(
            f"{path}: the MP4 index (moov) is not at the end of the file, so the NI Stems "
            "metadata cannot be added without moving the audio."
        )
    _, moov_offset, moov_size = boxes[-1]
    with path.open("rb") as handle:
        handle.seek(moov_offset)
        moov = handle.read(moov_size)
    header_size = 16 if HEADER.unpack_from(moov)[0] == 1 else 8
    children = _boxes(moov, header_size)
    parts: list[bytes] = []
    udta_found = False
    for kind, offset, size in children:
        child = moov[offset:offset + size]
        if kind == b"udta":
            udta_found = True
            inner = [
                moov[o:o + s] for k, o, s in _boxes(moov, offset + 8, offset + size)
                if k != b"stem"
            ]
            child = box(b"udta", b"".join(inner) + stem_box(metadata))
        parts.append(child)
    if not udta_found:
        parts.append(box(b"udta", stem_box(metadata)))
    new_moov = box(b"moov", b"".join(parts))
    with path.open("r+b") as handle:
        handle.seek(moov_offset)
        handle.write(new_moov)
        handle.truncate()
