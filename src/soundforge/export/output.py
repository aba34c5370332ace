"""One export file written beside its final name and renamed into place, so an
error, Ctrl-C or a full disk never leaves a half-written file under that name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from soundforge.errors import OutputError
from soundforge.storage.staging import describe_os_error, ensure_writable_dir


@contextmanager
def staged_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it becomes ``target``."""
    ensure_writable_dir(target.parent)
    suffix = "".join(target.suffixes) or ".tmp"
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, target.parent)) from None
    os.close(fd)
    staged = Path(temp)
    # mkstemp makes the file private (0600); an export is an ordinary file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staged, 0o666 & ~umask)
    try:
        yield staged
        os.replace(staged, target)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise OutputError(describe_os_error(exc, target)) from None
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
