"""Small random-weight RoFormer models in the format their authors publish.

Each model is a training YAML with the keys the community's configs have
(``model`` / ``training`` / ``inference`` / ``audio`` sections; small
dimensions, a short chunk) and a ``.ckpt`` holding the network's state dict,
saved under the catalogue's published file names. The networks are the
inference packages' own classes built by their own ``get_model_from_config``,
so the code that loads and runs these files is the production code, unchanged.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from ml_collections import ConfigDict

from soundforge.engines.local.catalog import BS_ROFORMER, MODELS

# ~0.5 s chunks: a few seconds of audio spans many overlapping chunks, and a
# test file can be shorter than one chunk, exactly one, or ragged.
TINY_CHUNK = 22016  # a whole number of STFT hops, as the published chunks are
TINY_N_FFT = 256
TINY_HOP = 64


def tiny_config(family: str, instruments: list[str], target: str | None) -> dict[str, Any]:
    model: dict[str, Any] = {
        "dim": 16,
        "depth": 1,
        "stereo": True,
        "num_stems": 1 if target is not None else len(instruments),
        "time_transformer_depth": 1,
        "freq_transformer_depth": 1,
        "dim_head": 8,
        "heads": 2,
        "attn_dropout": 0.0,
        "ff_dropout": 0.0,
        "flash_attn": True,
        "dim_freqs_in": TINY_N_FFT // 2 + 1,
        "stft_n_fft": TINY_N_FFT,
        "stft_hop_length": TINY_HOP,
        "stft_win_length": TINY_N_FFT,
        "stft_normalized": False,
        "mask_estimator_depth": 1,
        "multi_stft_resolution_loss_weight": 1.0,
        "multi_stft_resolutions_window_sizes": [256, 128],
        "multi_stft_hop_size": 64,
        "multi_stft_normalized": False,
    }
    if family == BS_ROFORMER:
        model["freqs_per_bands"] = [16, 16, 32, 65]
    else:
        model["num_bands"] = 8
        model["sample_rate"] = 44100
    return {
        "audio": {"chunk_size": TINY_CHUNK, "num_channels": 2, "sample_rate": 44100,
                  "min_mean_abs": 0.0},
        "model": model,
        "training": {"batch_size": 1, "instruments": instruments,
                     "target_instrument": target, "lr": 1.0e-5},
        "inference": {"batch_size": 1, "num_overlap": 2, "chunk_size": TINY_CHUNK},
    }


# The instruments and targets of the published configs, per catalogue entry.
LAYOUT: dict[str, tuple[list[str], str | None]] = {
    "bs_roformer_6s": (["bass", "drums", "other", "vocals", "guitar", "piano"], None),
    "bs_roformer_vocals": (["vocals", "other"], "vocals"),
    "mel_roformer_vocals": (["vocals", "other"], "vocals"),
    # Named as the karaoke models' own outputs are ("Vocals" = the lead), and
    # listed rest-first: the loader matches instruments by name, not position.
    "mel_roformer_karaoke": (["Instrumental", "Vocals"], "Vocals"),
}


def build_network(family: str, config: dict[str, Any]) -> torch.nn.Module:
    """The package's own network for ``config`` (its construction warns about an
    STFT without a window; the production loader silences that too)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A window was not provided")
        if family == BS_ROFORMER:
            from bs_roformer import get_model_from_config

            return get_model_from_config("bs_roformer", ConfigDict(config))
        from mel_band_roformer import get_model_from_config

        return get_model_from_config("mel_band_roformer", ConfigDict(config))


def write_tiny_roformer(repo: Path, name: str, seed: int = 0, **overrides: Any) -> Path:
    """Write ``name``'s config and checkpoint into ``repo``; returns the checkpoint."""
    spec = MODELS[name]
    assert spec.config is not None and spec.checkpoint is not None
    instruments, target = LAYOUT[name]
    config = tiny_config(spec.family, instruments, target)
    config["inference"].update(overrides)
    torch.manual_seed(seed)
    net = build_network(spec.family, config)
    (repo / spec.config.filename).write_text(yaml.safe_dump(config, sort_keys=False))
    path = repo / spec.checkpoint.filename
    torch.save(net.state_dict(), path)
    return path


def build_tiny_roformers(repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(LAYOUT):
        write_tiny_roformer(repo, name, seed=100 + seed)
    return repo
