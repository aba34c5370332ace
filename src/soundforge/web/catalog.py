"""What the forms offer: engines, Demucs models, stems, formats, and the
seed's model comparison table, all read from the engines' own catalogs so the
web form can never offer something an engine refuses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from soundforge.engines.base import OUTPUT_FORMATS, WAV_DEPTHS
from soundforge.engines.lalalai.engine import EXTRACTION_LEVELS, SPLITTERS
from soundforge.engines.local.catalog import DEFAULT_MODEL, MODELS
from soundforge.engines.local.device import available_devices, device_label
from soundforge.engines.local.ensemble import PRESETS, parse_ensemble
from soundforge.engines.local.loader import availability
from soundforge.stems import DEMUCS_STEMS, LALALAI_STEMS

ENGINE_LABELS = {"local": "Local Demucs", "lalalai": "LALAL.AI cloud"}


def device_choices() -> list[tuple[str, str]]:
    """(value, label) of the devices this server's machine has, for the settings form."""
    return [(choice, device_label(choice)) for choice in available_devices()]

FORMAT_LABELS = {
    "wav": "WAV (lossless)",
    "flac": "FLAC (lossless, smaller)",
    "mp3": "MP3 (320 kbps)",
}


@dataclass(frozen=True)
class ComparisonRow:
    key: str  # model name, or "lalalai"
    name: str
    engine: str
    stems: str
    quality: str
    speed: str
    cost: str
    description: str


@dataclass(frozen=True)
class EnsembleChoice:
    """A preset as the pickers show it."""

    name: str
    stems: tuple[str, ...]
    members: tuple[str, ...]
    combiner: str
    rationale: str

    @property
    def summary(self) -> str:
        how = "average" if self.combiner == "average" else self.combiner
        return f"{how} of {' + '.join(self.members)}"


def ensembles() -> dict[str, EnsembleChoice]:
    """The ensemble presets, in the order ``presets.py`` lists them."""
    choices = {}
    for name, preset in PRESETS.items():
        spec = parse_ensemble(name)
        choices[name] = EnsembleChoice(
            name, spec.stems, tuple(m.model for m in spec.members), spec.combiner,
            preset.rationale,
        )
    return choices


def picker_names() -> tuple[str, ...]:
    """What a model picker (the Separate form, the settings) offers: the
    models, then the ensemble presets."""
    return (*MODELS, *PRESETS)


def comparison_rows() -> list[ComparisonRow]:
    rows = [
        ComparisonRow(
            key=spec.name,
            name=spec.name,
            engine="Local",
            stems=str(len(spec.stems)),
            quality=spec.quality,
            speed=spec.speed,
            cost="Free",
            description=spec.description,
        )
        for spec in MODELS.values()
    ]
    rows += [
        ComparisonRow(
            key=choice.name,
            name=choice.name,
            engine="Local ensemble",
            stems=str(len(choice.stems)),
            quality="Ensemble",
            speed=f"Its {len(choice.members)} models' times added up",
            cost="Free",
            description=f"{choice.summary}. {choice.rationale}",
        )
        for choice in ensembles().values()
    ]
    rows.append(
        ComparisonRow(
            key="lalalai",
            name="lalal.ai",
            engine="Cloud",
            stems=f"{len(LALALAI_STEMS)}",
            quality="High",
            speed="Fast (server-side)",
            cost="Paid API (minutes)",
            description="Ten stem types including guitars, synth, strings and wind; "
            "a 60-second preview costs at most a minute per stem.",
        )
    )
    return rows


def all_stems() -> list[str]:
    """Every stem name either engine can be asked for, in the usual order."""
    return list(dict.fromkeys([*DEMUCS_STEMS, *LALALAI_STEMS]))


# The distinct extraction levels (the engine also accepts short aliases).
EXTRACTION_LEVEL_NAMES: tuple[str, ...] = tuple(dict.fromkeys(EXTRACTION_LEVELS.values()))
SPLITTER_NAMES: tuple[str, ...] = SPLITTERS


@dataclass(frozen=True)
class ModelState:
    available: bool
    label: str  # for the form: "ready" or what it needs


def model_states(repo: Path | None) -> dict[str, ModelState]:
    """Which Demucs models this machine has (model repository or hub cache),
    and which a first separation would have to download. Asks no network."""
    states = {}
    for name, spec in MODELS.items():
        state = availability(name, repo)
        if state.available:
            states[name] = ModelState(True, "ready")
        elif repo is not None:
            states[name] = ModelState(False, "not in the model repository")
        else:
            states[name] = ModelState(False, f"needs a ~{spec.download_mb} MB download")
    for name, choice in ensembles().items():
        missing = [member for member in choice.members if not states[member].available]
        if not missing:
            states[name] = ModelState(True, "ready")
        elif repo is not None:
            states[name] = ModelState(False, "not in the model repository")
        else:
            size = sum(MODELS[member].download_mb for member in missing)
            states[name] = ModelState(False, f"needs a ~{size} MB download")
    return states


def model_stems() -> dict[str, list[str]]:
    """The stems of everything a picker offers: models and ensemble presets."""
    stems = {name: list(spec.stems) for name, spec in MODELS.items()}
    stems.update({name: list(choice.stems) for name, choice in ensembles().items()})
    return stems


__all__ = [
    "DEFAULT_MODEL",
    "LALALAI_STEMS",
    "MODELS",
    "OUTPUT_FORMATS",
    "WAV_DEPTHS",
    "comparison_rows",
    "device_choices",
    "ensembles",
    "model_stems",
    "picker_names",
]
