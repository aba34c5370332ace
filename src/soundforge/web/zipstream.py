"""A ZIP archive written as a stream: memory stays flat whatever its size.

``zipfile`` can write to a stream it cannot seek: it then puts each entry's
sizes and CRC in a data descriptor after the data. We hand it a sink that
collects what it writes, copy each file in chunks, and yield the sink's
bytes after every chunk. Audio is stored, not deflated: WAV barely shrinks,
FLAC and MP3 not at all, and the CPU is better spent elsewhere. ZIP64 is on
for every entry so exports above 4 GB stay valid.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK = 256 * 1024


class _Sink:
    """A write-only, non-seekable file object that zipfile writes into."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        if data:
            self._parts.append(bytes(data))
            self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        # zipfile asks where it is to record entry offsets.
        return self._offset

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def stream_zip(entries: Iterable[tuple[str, Path]], chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Yield a ZIP of ``(name inside the archive, file on disk)`` pairs."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:  # type: ignore[call-overload]
        for name, path in entries:
            info = zipfile.ZipInfo.from_file(path, arcname=name)
            info.compress_type = zipfile.ZIP_STORED
            with open(path, "rb") as source, zf.open(info, mode="w", force_zip64=True) as target:
                while True:
                    block = source.read(chunk_size)
                    if not block:
                        break
                    target.write(block)
                    data = sink.drain()
                    if data:
                        yield data
            data = sink.drain()
            if data:
                yield data
    data = sink.drain()
    if data:
        yield data
