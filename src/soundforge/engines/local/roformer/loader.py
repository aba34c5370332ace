"""Build a RoFormer network from its published YAML config and ``.ckpt`` state
dict, through the inference package's own ``get_model_from_config``.

The checks are ours, so that a bad file is refused with what to do and never
half-loaded: a config that is not the training YAML the community's code
writes, a checkpoint that is truncated or not a state dict, and a checkpoint
whose keys or shapes do not fit the network the config describes.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from soundforge.engines.local.catalog import BS_ROFORMER, ModelSpec
from soundforge.engines.local.roformer.files import locate
from soundforge.errors import ModelUnavailableError

log = logging.getLogger(__name__)

DEFAULT_RATE = 44100


@dataclass
class RoformerModel:
    """A loaded RoFormer network and what the streaming code needs to run it."""

    name: str
    family: str  # catalog.BS_ROFORMER or MEL_ROFORMER: which package built the network
    net: torch.nn.Module
    config: Any  # the package's ConfigDict, as its demix_track reads it
    sources: tuple[str, ...]  # SoundForge's stem names, in the config's (output) order
    target: int | None  # index in ``sources`` of the one the network outputs; None = all
    samplerate: int
    audio_channels: int
    chunk_size: int
    num_overlap: int

    def eval(self) -> RoformerModel:
        self.net.eval()
        return self


def _fix(name: str) -> str:
    return (
        f"Run `soundforge models download {name}` to fetch the published files again, "
        "or replace them in the folder named by SOUNDFORGE_MODEL_REPO."
    )


def read_config(name: str, path: Path) -> Any:
    from ml_collections import ConfigDict

    loader = _tuple_loader()
    try:
        raw = yaml.load(path.read_text(), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelUnavailableError(
            f"Model {name}: the config {path} cannot be read ({type(exc).__name__}). "
            + _fix(name)
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict) or not isinstance(
        raw.get("training"), dict
    ):
        raise ModelUnavailableError(
            f"Model {name}: {path} is not a RoFormer training config (it needs `model` and "
            "`training` sections). " + _fix(name)
        )
    return ConfigDict(raw)


def _tuple_loader() -> type[yaml.SafeLoader]:
    # The community's configs tag some lists `!!python/tuple`; the package reads
    # them with a SafeLoader that builds lists (its get_model_from_config makes
    # the tuples). Same here, without executing anything.
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor(
        "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node)
    )
    return Loader


# What the community's configs call SoundForge's stems (lower-cased).
STEM_ALIASES: dict[str, frozenset[str]] = {
    "vocals": frozenset({"vocals", "vocal", "voice", "karaoke", "lead", "lead_vocals",
                         "lead vocals"}),
    "other": frozenset({"other", "instrumental", "instrument", "instruments", "no_vocals",
                        "accompaniment", "backing", "rest"}),
}


def stem_names(spec: ModelSpec, instruments: list[str]) -> tuple[str, ...]:
    """SoundForge's stem for each of the config's instruments, in the config's
    (the network's output) order, matched by name, never by position."""
    names: list[str] = []
    for instrument in instruments:
        key = str(instrument).strip().lower()
        matches = [stem for stem in spec.stems
                   if key == stem or key in STEM_ALIASES.get(stem, frozenset())]
        if len(matches) != 1:
            raise ModelUnavailableError(
                f"Model {spec.name}: its config's instruments ({', '.join(map(str, instruments))}) "
                f"do not name its stems ({', '.join(spec.stems)}): this is not the config "
                "published with it. " + _fix(spec.name)
            )
        names.append(matches[0])
    if sorted(names) != sorted(spec.stems):
        raise ModelUnavailableError(
            f"Model {spec.name}: its config's instruments ({', '.join(map(str, instruments))}) "
            f"do not name each of its stems ({', '.join(spec.stems)}) once. " + _fix(spec.name)
        )
    return tuple(names)


def _outputs(spec: ModelSpec, config: Any) -> tuple[int | None, int]:
    """(index of the target source or None, number of network outputs), checked."""
    instruments = list(config.training.get("instruments") or [])
    target = config.training.get("target_instrument")
    if len(instruments) != len(spec.stems):
        raise ModelUnavailableError(
            f"Model {spec.name}: its config names {len(instruments)} instruments "
            f"({', '.join(map(str, instruments))}) but the model has {len(spec.stems)} stems "
            f"({', '.join(spec.stems)}): this is not the config published with it. "
            + _fix(spec.name)
        )
    if target is None:
        return None, len(instruments)
    if target not in instruments or len(instruments) != 2:
        raise ModelUnavailableError(
            f"Model {spec.name}: its config's target_instrument {target!r} is not one of two "
            f"instruments ({', '.join(map(str, instruments))}). " + _fix(spec.name)
        )
    return instruments.index(target), 1


def load_roformer(spec: ModelSpec, repo: Path | None) -> RoformerModel:
    """The network of ``spec`` on the CPU in eval mode, or a clear refusal."""
    found = locate(spec, repo)
    if found.missing is not None or found.config is None or found.checkpoint is None:
        where = "(SOUNDFORGE_MODEL_REPO)" if repo is not None else ""
        raise ModelUnavailableError(
            f"Model {spec.name} is not available: {found.missing} {where}. "
            f"Run `soundforge models download {spec.name}` on a machine that is online, or "
            "set SOUNDFORGE_MODEL_REPO to a folder holding its files."
        )
    config = read_config(spec.name, found.config)
    target, outputs = _outputs(spec, config)
    sources = stem_names(spec, list(config.training.instruments))
    num_stems = int(config.model.get("num_stems", 1))
    if num_stems != outputs:
        raise ModelUnavailableError(
            f"Model {spec.name}: its config gives num_stems {num_stems} for {outputs} "
            "output(s). " + _fix(spec.name)
        )
    net = _build(spec, config)
    state = _read_state(spec.name, found.checkpoint)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise ModelUnavailableError(
            f"Model {spec.name}: the checkpoint {found.checkpoint.name} does not fit the "
            f"network its config {found.config.name} describes ({detail}). The two files "
            "must be the pair published together. " + _fix(spec.name)
        ) from None
    net.eval()
    rate = int(
        config.get("audio", {}).get("sample_rate")
        or config.model.get("sample_rate")
        or DEFAULT_RATE
    )
    inference = config.get("inference", {})
    chunk = inference.get("chunk_size") or config.get("audio", {}).get("chunk_size")
    overlap = inference.get("num_overlap")
    if not chunk or not overlap or int(chunk) // int(overlap) < 1:
        raise ModelUnavailableError(
            f"Model {spec.name}: its config lacks a usable inference.chunk_size and "
            "num_overlap. " + _fix(spec.name)
        )
    hop = int(config.model.get("stft_hop_length") or 0)
    if hop and int(chunk) % hop:
        # The network gives back whole STFT hops only: the chunks would not line
        # up (the package's own inference fails on such a config too).
        raise ModelUnavailableError(
            f"Model {spec.name}: its config's inference.chunk_size {int(chunk)} is not a "
            f"whole number of STFT hops ({hop} samples); use a multiple of {hop}, such as "
            f"{int(chunk) // hop * hop}."
        )
    return RoformerModel(
        name=spec.name,
        family=spec.family,
        net=net,
        config=config,
        sources=sources,
        target=target,
        samplerate=rate,
        audio_channels=2 if config.model.get("stereo", False) else 1,
        chunk_size=int(chunk),
        num_overlap=int(overlap),
    )


def _build(spec: ModelSpec, config: Any) -> torch.nn.Module:
    if spec.family == BS_ROFORMER:
        from bs_roformer import get_model_from_config

        kind = "bs_roformer"
    else:
        from mel_band_roformer import get_model_from_config

        kind = "mel_band_roformer"
    try:
        with warnings.catch_warnings():
            # The package sizes its bands with an STFT of noise, without a window:
            # torch's warning about it says nothing a user can act on.
            warnings.filterwarnings("ignore", message="A window was not provided")
            net = get_model_from_config(kind, config)
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        raise ModelUnavailableError(
            f"Model {spec.name}: its config does not describe a {kind} network "
            f"({type(exc).__name__}: {str(exc)[:200]}). " + _fix(spec.name)
        ) from None
    if net is None:
        raise ModelUnavailableError(f"Model {spec.name}: {kind} is not a known network.")
    return net


def _read_state(name: str, path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        log.debug("reading %s failed", path, exc_info=True)
        raise ModelUnavailableError(
            f"Model {name}: the checkpoint {path} is damaged or incomplete and was not "
            f"loaded ({type(exc).__name__}). " + _fix(name)
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelUnavailableError(
            f"Model {name}: {path} is not a state dict of tensors. " + _fix(name)
        )
    return state
