"""Small files replaced whole: a reader sees the old content or the new, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from soundforge.storage.temporary import temp_prefix


def write_text_atomically(target: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``target``, then rename it over
    ``target`` (a rename within one folder is atomic). Raises ``OSError``; a
    failed write leaves ``target`` as it was and no temporary file behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # A recognisable name: if the process is killed here, the sweep finds it.
    fd, temp = tempfile.mkstemp(prefix=temp_prefix(target.name), dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
