"""File names that leave SoundForge: download headers, uploads to LALAL.AI, and
the names of exported and templated files (``safe_filename`` is the one
sanitiser of a title or any other value put into a file name).

One ``Content-Disposition`` builder for both directions (RFC 6266): the real
name, UTF-8, in ``filename*`` (RFC 8187), which every current browser and
HTTP library prefers, and a readable ASCII ``filename`` for the clients that
read only that one, transliterated by ``anyascii`` ("Größe – ñandú" →
"Grosse - nandu") rather than replaced by underscores.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from anyascii import anyascii

# Characters no file system or shell should get from a title: path separators,
# Windows' reserved ones, control characters.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')


def safe_filename(text: str, fallback: str = "track") -> str:
    """``text`` as one file-name component, Unicode kept (ZIP entries and
    download names are UTF-8): separators and reserved characters become ``_``."""
    cleaned = _UNSAFE.sub("_", text).strip(" ._")
    return cleaned[:120].rstrip(" .") or fallback


def ascii_fallback(filename: str, default: str = "download") -> str:
    """A readable ASCII stand-in for ``filename``, safe inside a quoted header
    value: transliterated, quotes and backslashes replaced, no control characters."""
    text = anyascii(filename)
    text = text.replace('"', "'").replace("\\", "_")
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text)
    text = re.sub(r" {2,}", " ", text).strip()
    return text or default


def content_disposition(filename: str, default: str = "download") -> str:
    """``attachment; filename="ascii"`` plus, when the name is not plain ASCII,
    ``filename*=UTF-8''…`` with the real name."""
    name = filename.replace("\r", " ").replace("\n", " ").strip() or default
    fallback = ascii_fallback(name, default)
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header
