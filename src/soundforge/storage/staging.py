"""Write-then-move: stems become visible only when the whole job succeeded.

An engine writes into a hidden staging folder *next to* the destination (same
file system, so the final move is a rename), and ``commit()`` moves every file
into place. Anything that goes wrong before that, an exception, a timeout, a
SIGKILL, leaves at most a ``.staging-*`` folder that ``sweep_stale`` removes,
and never a half-written stem under its real name.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from soundforge.errors import OutputError

STAGING_PREFIX = ".staging-"


def describe_os_error(exc: OSError, path: Path) -> str:
    """Turn an OSError into a sentence that says what to do."""
    if exc.errno == errno.ENOSPC:
        return f"The disk is full while writing to {path}: free some space and try again."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot write to {path}: permission denied. Choose a folder you can write to."
    if exc.errno == errno.ENOTDIR:
        return f"Cannot write to {path}: a part of that path is a file, not a folder."
    return f"Cannot write to {path}: {exc.strerror or exc}."


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` (and parents) and check we may write there, or raise OutputError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, path)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(
            f"Cannot write to {path}: permission denied. Choose a folder you can write to."
        )


class StagingDir:
    """A private folder beside ``destination`` whose files move there on commit."""

    def __init__(self, destination: Path) -> None:
        self.destination = destination
        parent = destination.parent
        ensure_writable_dir(parent)
        try:
            self.path = Path(
                tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{destination.name}-", dir=parent)
            )
        except OSError as exc:
            raise OutputError(describe_os_error(exc, parent)) from None

    def file(self, name: str) -> Path:
        return self.path / name

    def commit(self) -> dict[str, Path]:
        """Move every staged file into ``destination``; returns name → final path.

        Files are renamed one by one (each rename is atomic); an existing file of
        the same name, from an earlier run, is replaced.
        """
        ensure_writable_dir(self.destination)
        moved: dict[str, Path] = {}
        try:
            for staged in sorted(self.path.iterdir()):
                final = self.destination / staged.name
                os.replace(staged, final)
                moved[staged.name] = final
        except OSError as exc:
            raise OutputError(describe_os_error(exc, self.destination)) from None
        self.discard()
        return moved

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def staging_for(destination: Path) -> Iterator[StagingDir]:
    """Staging folder that is removed whatever happens; call ``commit()`` inside."""
    staging = StagingDir(destination)
    try:
        yield staging
    finally:
        staging.discard()


def sweep_stale(parent: Path) -> int:
    """Remove staging folders that a killed process left in ``parent``."""
    removed = 0
    if not parent.is_dir():
        return 0
    for child in parent.iterdir():
        if child.is_dir() and child.name.startswith(STAGING_PREFIX):
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    return removed
