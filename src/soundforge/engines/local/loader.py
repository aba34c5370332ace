"""Load model weights: Demucs through the official package's own loader,
RoFormer models through ``roformer.loader`` (their config and checkpoint).

Two sources for Demucs, as the official CLI has them:

* a local model repository (``SOUNDFORGE_MODEL_REPO``): ``{sig}.th`` files and
  ``{name}.yaml`` bags, read by ``demucs.repo.LocalRepo``/``BagOnlyRepo``;
* the Hugging Face hub (``demucs.hf``), cached in the standard HF cache, with
  the legacy download site as the package's own fallback.

When weights are neither here nor reachable we say so at once with the command
that fixes it; we never substitute another model.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soundforge.engines.local.catalog import ModelSpec, get_spec
from soundforge.errors import ModelUnavailableError

log = logging.getLogger(__name__)

HUB_HOST = "huggingface.co"


@dataclass(frozen=True)
class Availability:
    available: bool
    where: str  # "repo /x", "cache", or why not


def _fix_hint(name: str) -> str:
    return (
        f"Run `soundforge models download {name}` on a machine that is online, "
        "or set SOUNDFORGE_MODEL_REPO to a folder holding its files."
    )


def _repo_files(name: str, repo: Path) -> tuple[list[Path], str | None]:
    """Files the local repo needs for ``name``; second item: what is missing."""
    bag = repo / f"{name}.yaml"
    if not bag.is_file():
        singles = list(repo.glob(f"{name}.th")) + list(repo.glob(f"{name}-*.th"))
        if singles:
            return singles, None
        return [], f"it has no {name}.yaml"
    try:
        signatures = yaml.safe_load(bag.read_text())["models"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return [], f"{bag.name} is not a valid bag file"
    files = [bag]
    for sig in signatures:
        found = list(repo.glob(f"{sig}.th")) + list(repo.glob(f"{sig}-*.th"))
        if not found:
            return files, f"{bag.name} names {sig} but there is no {sig}.th"
        files.extend(found)
    return files, None


def _hub_cached(name: str) -> bool:
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
    from huggingface_hub import try_to_load_from_cache

    repo_id = f"{DEFAULT_NAMESPACE}/{hf_repo_name(name)}"
    bag_file = try_to_load_from_cache(repo_id, f"{name}.yaml")
    if not isinstance(bag_file, str):
        return False
    try:
        signatures = yaml.safe_load(Path(bag_file).read_text())["models"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return False
    return all(
        isinstance(try_to_load_from_cache(repo_id, f"{sig}.safetensors"), str)
        for sig in signatures
    )


def _roformer_availability(spec: ModelSpec, repo: Path | None) -> Availability:
    from soundforge.engines.local.roformer.files import locate

    found = locate(spec, repo)
    if found.missing is None:
        return Availability(True, f"repo {repo}" if repo is not None else "cache")
    return Availability(False, found.missing if repo is not None else "not downloaded")


def availability(name: str, repo: Path | None) -> Availability:
    """Whether ``name`` can be loaded without a network."""
    spec = get_spec(name)
    if spec.is_roformer:
        return _roformer_availability(spec, repo)
    if repo is not None:
        if not repo.is_dir():
            return Availability(False, f"model repository {repo} is not a folder")
        _, missing = _repo_files(name, repo)
        if missing:
            return Availability(False, f"not in {repo}: {missing}")
        return Availability(True, f"repo {repo}")
    if _hub_cached(name):
        return Availability(True, "cache")
    return Availability(False, "not downloaded")


def unavailable_reason(name: str, repo: Path | None) -> str | None:
    """Why ``name`` cannot be loaded right now, in words with the fix; None
    when it can (in the repository, in the hub cache, or the hub answers).
    Asks the network only when the model is not here already."""
    state = availability(name, repo)
    if state.available:
        return None
    if get_spec(name).is_roformer:
        # Never fetched on first use: `soundforge models download` checks the
        # published checksum and resumes, a separation job should not.
        where = "(SOUNDFORGE_MODEL_REPO)" if repo is not None else "here"
        return f"Model {name} is not available {where}: {state.where}. " + _fix_hint(name)
    if repo is not None:
        return f"Model {name} is not available: {state.where} (SOUNDFORGE_MODEL_REPO). " + (
            _fix_hint(name))
    if _hub_reachable():
        return None  # downloaded on first use
    return (f"Model {name} is not downloaded and the model hub ({HUB_HOST}) cannot be "
            "reached from this machine. " + _fix_hint(name))


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.getaddrinfo(HUB_HOST, 443, proto=socket.IPPROTO_TCP)
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_model(name: str, repo: Path | None) -> Any:
    """The model (or bag of models) ``name``, on the CPU, in eval mode."""
    from demucs.pretrained import get_model
    from demucs.repo import ModelLoadingError

    spec = get_spec(name)
    if spec.is_roformer:
        from soundforge.engines.local.roformer.loader import load_roformer

        return load_roformer(spec, repo)
    if repo is not None:
        state = availability(name, repo)
        if not state.available:
            raise ModelUnavailableError(
                f"Model {name} is not available: {state.where} (SOUNDFORGE_MODEL_REPO). "
                + _fix_hint(name)
            )
    elif not _hub_cached(name) and not _hub_reachable():
        raise ModelUnavailableError(
            f"Model {name} is not downloaded and the model hub ({HUB_HOST}) cannot be "
            "reached from this machine. " + _fix_hint(name)
        )
    try:
        model = get_model(name, repo=repo)
    except ModelLoadingError as exc:
        raise ModelUnavailableError(f"Model {name} could not be loaded: {exc}") from None
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        log.debug("loading %s failed", name, exc_info=True)
        where = f"from {repo}" if repo is not None else "from the model hub"
        raise ModelUnavailableError(
            f"Model {name} could not be loaded {where} ({type(exc).__name__}: "
            f"{str(exc)[:200]}). " + _fix_hint(name)
        ) from None
    model.eval()
    return model


def download(name: str, on_file: Callable[[str], None] | None = None) -> str:
    """Fetch ``name`` into the local cache ahead of time; returns where it is.
    ``on_file`` hears about each file as its download starts (RoFormer models)."""
    spec = get_spec(name)
    if spec.is_roformer:
        from soundforge.engines.local.roformer.download import download_model

        return download_model(spec, on_file=on_file)
    if _hub_cached(name):
        return "already in the cache"
    if not _hub_reachable():
        raise ModelUnavailableError(
            f"Cannot download model {name}: {HUB_HOST} is not reachable from this "
            "machine. Download it on a machine that is online and copy its files into a "
            "folder named by SOUNDFORGE_MODEL_REPO."
        )
    load_model(name, None)
    return "downloaded to the Hugging Face cache"
