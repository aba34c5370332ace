"""Temporary files that a killed process leaves behind, and their sweep.

Every temporary file SoundForge writes is in one of these places:

* ``uploads/.incoming/upload-*``: an upload being checked and imported (the
  web server);
* ``.{name}.tmp-*`` beside the file it replaces: a small file written whole
  (``atomic.py``: peaks caches, the CLI's leftover records, the secret file);
* ``.staging-*`` folders under ``uploads/stems`` and ``uploads/tracks``, which
  ``jobs.recovery.collect_garbage`` judges against the database.

``sweep_temporary_files`` removes the first two kinds when they are older than
a safe age. A process that dies never cleans up; this runs at start and
periodically in every worker (the embedded one of ``soundforge serve`` too),
and at start in every web server.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

INCOMING = ".incoming"
TEMP_MARKER = ".tmp-"


def incoming_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "uploads" / INCOMING


def temp_prefix(target_name: str) -> str:
    """The prefix of a temporary file that will replace ``target_name``."""
    return f".{target_name}{TEMP_MARKER}"


def is_temporary(name: str) -> bool:
    return name.startswith(".") and TEMP_MARKER in name


def sweep_temporary_files(data_dir: Path, min_age: float) -> list[Path]:
    """Remove temporary files older than ``min_age`` seconds; returns them."""
    cutoff = time.time() - min_age
    root = Path(data_dir)
    removed: list[Path] = []

    def remove_if_old(path: Path) -> None:
        try:
            if path.is_file() and path.lstat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            pass  # another sweeper, or its owner, got there first
        except OSError as exc:
            log.warning("could not remove the leftover %s: %s", path, exc)

    incoming = incoming_dir(root)
    if incoming.is_dir():
        for entry in incoming.iterdir():
            remove_if_old(entry)
    for folder, _subfolders, files in os.walk(root):
        if Path(folder) == incoming:
            continue
        for name in files:
            if is_temporary(name):
                remove_if_old(Path(folder) / name)
    if removed:
        log.warning("removed %d leftover temporary file(s): %s", len(removed),
                    ", ".join(str(path) for path in removed[:10]))
    return removed
