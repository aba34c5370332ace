"""Ensembles: several catalogue models combined per stem, in one streaming pass."""

from soundforge.engines.local.ensemble.presets import PRESETS, Preset
from soundforge.engines.local.ensemble.spec import (
    COMBINERS,
    EnsembleMember,
    EnsembleSpec,
    ensemble_outputs,
    is_ensemble,
    parse_ensemble,
)

__all__ = [
    "COMBINERS",
    "PRESETS",
    "EnsembleMember",
    "EnsembleSpec",
    "Preset",
    "ensemble_outputs",
    "is_ensemble",
    "parse_ensemble",
]
