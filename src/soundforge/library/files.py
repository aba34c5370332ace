"""Where files live under ``data_dir/uploads``, and safe ways to reach them.

    uploads/tracks/{track_id}/original.{ext}   the uploaded file, as uploaded
    uploads/tracks/{track_id}/cover.{jpg|png}  cover art from its tags
    uploads/stems/{job_id}/{stem}.{ext}        a job's stems
    uploads/stems/.staging-{job_id}-*/         a running job's stems being written

The database holds paths relative to ``uploads/``; ``resolve_upload`` turns one
back into a path and refuses anything that would leave the folder (``..``,
absolute paths, symlinks pointing out), so a URL like
``/files/stems/{job_id}/{file}`` can never serve another file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path, PurePosixPath

from soundforge.config import Settings
from soundforge.errors import NotFoundError
from soundforge.storage.staging import STAGING_PREFIX

log = logging.getLogger(__name__)


# An absolute POSIX path not inside a URL (after ':' or '/' it is part of one).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/:'\"()]+/)+([^\s/:'\"()]*)")


def hide_server_paths(message: str, settings: Settings) -> str:
    """``message`` as API clients and pages may see it: paths in the data folder
    relative to it (``uploads/tracks/{id}/original.wav``), the model repository
    by its setting, any other absolute path by its last part only. The server's
    layout is none of a client's business; the CLI keeps the full paths."""
    data = Path(settings.data_dir)
    roots = [(str(root), "") for root in {data.absolute(), data.resolve()}]
    if settings.model_repo is not None:
        repo = Path(settings.model_repo)
        roots += [(str(root), "SOUNDFORGE_MODEL_REPO/")
                  for root in {repo.absolute(), repo.resolve()}]
    for root, replacement in sorted(roots, key=lambda pair: len(pair[0]), reverse=True):
        message = message.replace(root + os.sep, replacement)
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1) or "a server folder", message)


def tracks_dir(settings: Settings) -> Path:
    return settings.uploads_dir / "tracks"


def stems_dir(settings: Settings) -> Path:
    return settings.uploads_dir / "stems"


def job_stems_dir(settings: Settings, job_id: str) -> Path:
    return stems_dir(settings) / job_id


def relative_to_uploads(settings: Settings, path: Path) -> str:
    return PurePosixPath(Path(path).absolute().relative_to(settings.uploads_dir)).as_posix()


def resolve_upload(settings: Settings, relative: str) -> Path:
    """``stems/{job}/vocals.wav`` → its absolute path, or NotFoundError if it leaves uploads/."""
    root = settings.uploads_dir
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if not parts or relative.startswith("/") or any(
        part in ("", ".", "..") or "\x00" in part for part in parts
    ):
        raise NotFoundError.of("file")
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
        real.relative_to(root.resolve())
    except (OSError, ValueError):
        raise NotFoundError.of("file") from None
    if not real.is_file():
        raise NotFoundError.of("file")
    return real


def remove_tree(path: Path) -> None:
    """Delete a folder (or file) if it exists; failures are logged, not raised,
    because they happen after the database already forgot the files."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


def job_staging_dirs(settings: Settings, job_id: str) -> list[Path]:
    """Staging folders a run of ``job_id`` created (``.staging-{job_id}-*``)."""
    parent = stems_dir(settings)
    prefix = f"{STAGING_PREFIX}{job_id}-"
    try:
        return [entry for entry in parent.iterdir() if entry.name.startswith(prefix)]
    except FileNotFoundError:
        return []


def remove_job_files(settings: Settings, job_id: str, *, staging_only: bool = False) -> None:
    """Remove a job's stems folder and any staging folder of it."""
    for staging in job_staging_dirs(settings, job_id):
        remove_tree(staging)
    if not staging_only:
        remove_tree(job_stems_dir(settings, job_id))


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link when possible (same file system: no extra space), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
