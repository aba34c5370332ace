"""Pick the compute device: CUDA if present, else Apple MPS, else the CPU."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from soundforge.errors import InvalidOptionError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI must start fast
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(choice: str | None) -> torch.device:
    import torch

    choice = (choice or "auto").lower()
    if choice not in DEVICES:
        raise InvalidOptionError(f"Unknown device {choice!r}: use auto, cpu, cuda or mps.")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if choice == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if choice == "cuda" and not cuda:
        raise InvalidOptionError(
            "CUDA was asked for but no CUDA GPU is usable here; use --device cpu (or auto)."
        )
    if choice == "mps" and not mps:
        raise InvalidOptionError(
            "MPS was asked for but Apple's Metal backend is not available; use --device cpu."
        )
    return torch.device(choice)


def configure_threads(threads: int) -> int:
    """Use every core unless told otherwise (SOUNDFORGE_THREADS)."""
    import torch

    count = threads if threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(count)
    return count
