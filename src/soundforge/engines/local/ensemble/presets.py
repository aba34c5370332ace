"""Named ensembles: data, one line each, with the reason each one exists.

A preset is a name for an ensemble definition (the ``--model`` syntax of
``spec.py``), so changing which models a preset combines is a one-line edit
of its ``definition``; nothing else refers to the members.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    definition: str  # as typed after --model: "[combiner/]a[:w][@stems]+b…"
    rationale: str  # why this combination, for the docs, `models list` and the web picker


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "ensemble_average",
            "htdemucs_ft+mdx_extra",
            "Average of two different architectures (hybrid transformer and Demucs v3 "
            "trained on extra data): their errors differ, so the average has fewer "
            "artefacts than either. About 8 networks: slow on a CPU.",
        ),
        Preset(
            "ensemble_vocals_max",
            "max-spec/htdemucs_ft@vocals+mdx_extra@vocals",
            "Vocals only, max spectrum (UVR's advice for vocals): per frequency bin the "
            "louder estimate wins, so breaths and reverb tails are kept, at the cost of "
            "some bleed. no_vocals is the mix minus these vocals.",
        ),
        Preset(
            "ensemble_six_stems",
            "htdemucs_ft@drums,bass,vocals+htdemucs_6s@guitar,piano,other",
            "Six stems with the fine-tuned specialists' drums, bass and vocals and "
            "htdemucs_6s's guitar, piano and other (the 4-stem models' other holds "
            "guitar and piano).",
        ),
    )
}
