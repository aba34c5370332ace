"""Small random-weight Demucs models in the on-disk format the real loader reads.

No weights can be downloaded on the machines that run the tests, so we build
models of the published classes (HTDemucs, HDemucs), shrunk to a few thousand
parameters, and save them as a ``LocalRepo``: ``{sig}.th`` packages
(``klass``/``args``/``kwargs``/``state``, as ``demucs.states.load_model``
expects) and ``{name}.yaml`` bags under the official model names. The code that
loads and runs them is the production code, unchanged.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import yaml
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs

FOUR = ["drums", "bass", "other", "vocals"]
SIX = ["drums", "bass", "other", "vocals", "guitar", "piano"]

# A segment of 2 s keeps inference fast and makes a few seconds of audio span
# several overlapping segments, which is what the chunking code must get right.
TINY_SEGMENT = Fraction(2)


def tiny_htdemucs_kwargs(sources: list[str], segment: Fraction = TINY_SEGMENT) -> dict[str, Any]:
    return {
        "sources": sources,
        "channels": 4,
        "t_layers": 1,
        "t_heads": 2,
        "t_hidden_scale": 1.0,
        "bottom_channels": 0,
        "dconv_comp": 2,
        "segment": segment,
    }


def tiny_hdemucs_kwargs(sources: list[str]) -> dict[str, Any]:
    return {
        "sources": sources,
        "channels": 4,
        "depth": 5,
        "dconv_comp": 2,
        "segment": 2,
    }


def _package(klass: type, kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = klass(**kwargs)
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    return {"klass": klass, "args": [], "kwargs": kwargs, "state": state}


def _save(repo: Path, package: dict[str, Any]) -> str:
    import io

    buf = io.BytesIO()
    torch.save(package, buf)
    sig = hashlib.sha256(buf.getvalue()).hexdigest()[:8]
    (repo / f"{sig}.th").write_bytes(buf.getvalue())
    return sig


def _bag(repo: Path, name: str, sigs: list[str], **extra: Any) -> None:
    data: dict[str, Any] = {"models": sigs}
    data.update(extra)
    (repo / f"{name}.yaml").write_text(yaml.safe_dump(data))


def build_tiny_repo(repo: Path, names: tuple[str, ...] | None = None) -> Path:
    """Write tiny versions of the four offered models into ``repo``."""
    repo.mkdir(parents=True, exist_ok=True)
    wanted = set(names or ("htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"))
    if "htdemucs" in wanted:
        _bag(repo, "htdemucs", [_save(repo, _package(HTDemucs, tiny_htdemucs_kwargs(FOUR), 1))])
    if "htdemucs_ft" in wanted:
        sigs = [
            _save(repo, _package(HTDemucs, tiny_htdemucs_kwargs(FOUR), 10 + i)) for i in range(4)
        ]
        identity = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
        _bag(repo, "htdemucs_ft", sigs, weights=identity)
    if "htdemucs_6s" in wanted:
        _bag(repo, "htdemucs_6s", [_save(repo, _package(HTDemucs, tiny_htdemucs_kwargs(SIX), 2))])
    if "mdx_extra" in wanted:
        sigs = [_save(repo, _package(HDemucs, tiny_hdemucs_kwargs(FOUR), 20 + i)) for i in range(4)]
        _bag(repo, "mdx_extra", sigs, segment=44)
    return repo


def build_tiny_model_at_rate(repo: Path, name: str, samplerate: int, seed: int = 3) -> Path:
    """A tiny ``name`` (htdemucs-shaped) that works at ``samplerate``: for the
    checks that refuse to combine models of different rates."""
    repo.mkdir(parents=True, exist_ok=True)
    kwargs = {**tiny_htdemucs_kwargs(SIX if name == "htdemucs_6s" else FOUR),
              "samplerate": samplerate}
    _bag(repo, name, [_save(repo, _package(HTDemucs, kwargs, seed))])
    return repo
