"""Where a RoFormer model's files are: the model repository, the download
cache, or (for a config that ships with the inference package) the package.

Layout, the same in both folders: the files under their published names,
side by side, e.g. ``MelBandRoformer.ckpt`` (and ``config_…yaml`` where the
config is not packaged). Demucs files can share the folder
(``SOUNDFORGE_MODEL_REPO`` holds both kinds).

Files enter the download cache only after their size and sha256 matched the
published ones (``download.py``); a ``.part`` file there is an unfinished
download, which is never loaded.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from soundforge.engines.local.catalog import ModelSpec, WeightFile

CACHE_ENV = "SOUNDFORGE_MODEL_CACHE"
MIRROR_ENV = "SOUNDFORGE_MODEL_MIRROR"


def cache_dir() -> Path:
    """Where ``soundforge models download`` puts RoFormer files."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "soundforge" / "models"


def packaged_path(spec: str) -> Path:
    """``module:relative/path`` → the file inside the installed package."""
    module, _, relative = spec.partition(":")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"the package {module!r} is not installed")
    return Path(next(iter(found.submodule_search_locations))) / relative


@dataclass(frozen=True)
class Located:
    config: Path | None
    checkpoint: Path | None
    missing: str | None  # why the model cannot be loaded from here; None = it can


def _find(file: WeightFile, folder: Path) -> Path | None:
    """The file in ``folder``; for a packaged config, the package's copy unless
    ``folder`` holds one of the same name (a copy with another chunk_size, say)."""
    here = folder / file.filename
    if here.is_file():
        return here
    if file.packaged is not None:
        try:
            path = packaged_path(file.packaged)
        except FileNotFoundError:
            return None
        return path if path.is_file() else None
    return None


def locate(spec: ModelSpec, repo: Path | None) -> Located:
    """The model's files in the repository (if one is set) or the cache."""
    assert spec.config is not None and spec.checkpoint is not None
    folder = repo if repo is not None else cache_dir()
    where = "SOUNDFORGE_MODEL_REPO" if repo is not None else "the download cache"
    if repo is not None and not repo.is_dir():
        return Located(None, None, f"model repository {repo} is not a folder")
    config = _find(spec.config, folder)
    checkpoint = _find(spec.checkpoint, folder)
    missing = [f.filename for f, path in ((spec.config, config), (spec.checkpoint, checkpoint))
               if path is None]
    if missing:
        partial = (folder / f"{spec.checkpoint.filename}.part").is_file()
        reason = f"{' and '.join(missing)} not in {where} ({folder})"
        if partial:
            reason += "; an unfinished download is there"
        return Located(config, checkpoint, reason)
    return Located(config, checkpoint, None)


def download_url(file: WeightFile) -> str | None:
    """The published URL, or the same file name under ``SOUNDFORGE_MODEL_MIRROR``."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return mirror.rstrip("/") + "/" + file.filename
    return file.url
