"""The Demucs models SoundForge offers, and what each one gives.

The seed validated against a hard-coded list that forgot ``htdemucs_6s``; here
this table is the single source of truth for the CLI, the runner, the web form
and the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from soundforge.errors import InvalidOptionError

FOUR_STEMS = ("drums", "bass", "other", "vocals")
SIX_STEMS = ("drums", "bass", "other", "vocals", "guitar", "piano")
DEFAULT_MODEL = "htdemucs"
HTDEMUCS_SEGMENT = 7.8  # the published htdemucs models' training segment (39/5 s)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    stems: tuple[str, ...]  # in the model's own output order
    bag_size: int  # how many networks the model averages (a "bag of models")
    download_mb: int  # approximate size of the weights to download
    quality: str
    speed: str
    description: str
    # The longest --segment the model takes (seconds): a transformer refuses
    # more than it was trained on; None = only the general limit applies.
    max_segment: float | None = None
    # The rate the model hears and writes; an ensemble's members must share it.
    sample_rate: int = 44100

    @property
    def is_bag(self) -> bool:
        return self.bag_size > 1


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "htdemucs", FOUR_STEMS, 1, 84, "Good", "Fast (GPU) / Slow (CPU)",
            "Hybrid Transformer Demucs: the general-purpose default.", HTDEMUCS_SEGMENT,
        ),
        ModelSpec(
            "htdemucs_ft", FOUR_STEMS, 4, 336, "High", "Slower than htdemucs (4 networks)",
            "Four fine-tuned htdemucs specialists, one per stem; asking for one stem "
            "runs only its specialist.", HTDEMUCS_SEGMENT,
        ),
        ModelSpec(
            "htdemucs_6s", SIX_STEMS, 1, 55, "Good", "Medium",
            "Six stems: adds guitar and piano (piano is the weakest).", HTDEMUCS_SEGMENT,
        ),
        ModelSpec(
            "mdx_extra", FOUR_STEMS, 4, 660, "High (vocals)", "Medium",
            "Bag of four Demucs v3 models from the MDX challenge, trained on extra data.",
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise InvalidOptionError(
            f"Unknown model {name!r}. Choose one of: {', '.join(MODELS)}."
        ) from None


def resolve_outputs(
    spec: ModelSpec, stems: tuple[str, ...] | None, two_stems: str | None
) -> tuple[str, ...]:
    """The stem files a request produces, checked against the model.

    * nothing asked: every stem of the model;
    * ``stems``: just those;
    * ``two_stems=X``: ``X`` and ``no_X`` (what is left without it).
    """
    if two_stems is not None and stems is not None:
        raise InvalidOptionError("Use either --stems or --two-stems, not both.")
    wanted = (two_stems,) if two_stems is not None else stems
    for stem in wanted or ():
        if stem not in spec.stems:
            raise InvalidOptionError(
                f"Model {spec.name} has no stem {stem!r}; its stems are "
                f"{', '.join(spec.stems)}."
                + (" Use htdemucs_6s for guitar and piano." if stem in SIX_STEMS else "")
            )
    if two_stems is not None:
        return (two_stems, f"no_{two_stems}")
    if stems is not None:
        return tuple(stems)
    return spec.stems
