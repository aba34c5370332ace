"""Ensembles compared with their members run alone, in the warm session engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from soundforge.engines.base import SeparationOptions
from soundforge.engines.local.engine import LocalEngine
from tests.local.equivalence_support import read_stem


def separate_warm(engine: LocalEngine, song: Path, out: Path, model: str,
                  **options: Any) -> dict[str, np.ndarray]:
    """The same run through the warm session engine (what the CLI calls), for the
    references an ensemble is compared with: no process start, models stay loaded."""
    result = engine.separate(
        song, SeparationOptions(model=model, wav_depth="float", seed=7, **options),
        destination=out,
    )
    return {name: read_stem(path) for name, path in result.stems.items()}


# A model's stems of the module's mix, run alone (with these stems only, or all).
Alone = Callable[..., dict[str, np.ndarray]]


def runs_alone(engine: LocalEngine, mix: Path, folder: Path) -> Alone:
    """Each model's stems of ``mix`` run alone in the warm engine, each computed once."""
    runs: dict[tuple[str, tuple[str, ...] | None], dict[str, np.ndarray]] = {}

    def run(model: str, stems: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        if (model, stems) not in runs:
            out = folder / f"{model}-{len(runs)}"
            runs[model, stems] = separate_warm(engine, mix, out, model, stems=stems)
        return runs[model, stems]

    return run
