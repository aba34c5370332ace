"""Fetch a RoFormer model's published files into the download cache.

Each file is downloaded to ``{name}.part`` next to its final place. An
interrupted transfer leaves the ``.part`` file, and the next attempt asks the
server for the rest only (HTTP ``Range``); a server that ignores the range
gets the whole file again. The finished file is moved into place only when its
size and sha256 are the published ones, so what the loader finds in the cache
is always a complete, verified file. A file whose checksum does not match is
deleted and refused with what to do.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import httpx

from soundforge.engines.local.catalog import ModelSpec, WeightFile
from soundforge.engines.local.roformer.files import cache_dir, download_url, locate
from soundforge.errors import ModelUnavailableError

log = logging.getLogger(__name__)

# (file name, bytes so far, total bytes or None) → None
DownloadProgress = Callable[[str, int, int | None], None]
CHUNK = 1 << 20
TIMEOUT = httpx.Timeout(30.0, read=60.0)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download_model(
    spec: ModelSpec,
    on_file: Callable[[str], None] | None = None,
    on_progress: DownloadProgress | None = None,
) -> str:
    """Make the cache hold ``spec``'s files; returns where they are."""
    folder = cache_dir()
    if locate(spec, None).missing is None:
        return f"already in {folder}"
    folder.mkdir(parents=True, exist_ok=True)
    for file in spec.weight_files:
        if file.packaged is None and not (folder / file.filename).is_file():
            if on_file is not None:
                part = folder / f"{file.filename}.part"
                resume = f", resuming at {part.stat().st_size} bytes" if part.is_file() else ""
                size = f"{file.size / 1e6:.1f} MB" if file.size else "size unknown"
                on_file(f"{file.filename} ({size}) from {download_url(file)}{resume}")
            fetch(spec.name, file, folder, on_progress)
    return f"downloaded to {folder}"


def fetch(
    model: str, file: WeightFile, folder: Path, on_progress: DownloadProgress | None = None
) -> Path:
    """Download one file to ``folder``, resuming a ``.part`` file, and verify it."""
    url = download_url(file)
    if url is None or file.sha256 is None:
        raise ModelUnavailableError(
            f"Model {model}: {file.filename} has no published download with a checksum. "
            "Put the file into a folder named by SOUNDFORGE_MODEL_REPO."
        )
    final = folder / file.filename
    part = folder / f"{file.filename}.part"
    try:
        _transfer(url, part, file.size, on_progress)
    except httpx.HTTPError as exc:
        have = part.stat().st_size if part.exists() else 0
        raise ModelUnavailableError(
            f"Downloading {file.filename} for model {model} from {url} failed after "
            f"{have} of {file.size or '?'} bytes ({type(exc).__name__}: {str(exc)[:160]}). "
            f"Run `soundforge models download {model}` again: it resumes where it stopped."
        ) from None
    size = part.stat().st_size
    if file.size is not None and size != file.size:
        part.unlink()
        raise ModelUnavailableError(
            f"{file.filename} for model {model} downloaded as {size} bytes, but the published "
            f"file has {file.size}; it was deleted and not used. Run `soundforge models "
            f"download {model}` again; if this repeats, {url} no longer serves the published "
            "file."
        )
    actual = sha256_of(part)
    if actual != file.sha256:
        part.unlink()
        raise ModelUnavailableError(
            f"{file.filename} for model {model} does not match its published checksum "
            f"(sha256 {actual[:16]}…, expected {file.sha256[:16]}…); it was deleted and not "
            f"used. Run `soundforge models download {model}` again; if this repeats, {url} no "
            "longer serves the published file: get it from its author and put it into a "
            "folder named by SOUNDFORGE_MODEL_REPO."
        )
    part.replace(final)
    return final


def _transfer(
    url: str, part: Path, total: int | None, on_progress: DownloadProgress | None
) -> None:
    have = part.stat().st_size if part.exists() else 0
    if total is not None and have >= total:
        if have > total:
            part.unlink()  # longer than the published file: start again
            have = 0
        else:
            return
    headers = {"Range": f"bytes={have}-"} if have else {}
    with (
        httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.status_code == 416 and have:
            return  # nothing left to send: the .part file is complete
        response.raise_for_status()
        resumed = have > 0 and response.status_code == 206
        if have and not resumed:
            log.info("%s ignored the range request; downloading %s again", url, part.name)
            have = 0
        with part.open("ab" if resumed else "wb") as out:
            for block in response.iter_bytes():  # as received: a break keeps what came
                out.write(block)
                have += len(block)
                if on_progress is not None:
                    on_progress(part.name[: -len(".part")], have, total)
