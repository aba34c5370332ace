"""The models SoundForge offers, and what each one gives.

The seed validated against a hard-coded list that forgot ``htdemucs_6s``; here
this table is the single source of truth for the CLI, the runner, the web form
and the worker.

Names follow one scheme: ``{architecture}[_{variant}]``, lower case with
underscores. The Demucs models keep the names the official package gives them
(``htdemucs``, ``htdemucs_6s``: architecture, then what sets the variant apart);
the RoFormer models follow the same pattern with the architecture spelt out
(``bs_roformer``, ``mel_roformer``) and the variant saying what they separate
(``6s``, ``vocals``, ``karaoke``). Authors live in the entry, not the name.
"""

from __future__ import annotations

from dataclasses import dataclass

from soundforge.errors import InvalidOptionError

FOUR_STEMS = ("drums", "bass", "other", "vocals")
SIX_STEMS = ("drums", "bass", "other", "vocals", "guitar", "piano")
DEFAULT_MODEL = "htdemucs"
HTDEMUCS_SEGMENT = 7.8  # the published htdemucs models' training segment (39/5 s)


DEMUCS = "demucs"
BS_ROFORMER = "bs_roformer"
MEL_ROFORMER = "mel_band_roformer"


@dataclass(frozen=True)
class WeightFile:
    """One file a RoFormer model needs, as its author published it.

    ``sha256`` and ``size`` are the published ones (the Hugging Face LFS
    pointers, as recorded by the registries of bs-roformer-infer and
    melband-roformer-infer); a download that does not match them is refused.
    ``packaged`` names a file that ships inside the inference package itself
    (its config), so there is nothing to download for it.
    """

    filename: str
    url: str | None
    sha256: str | None
    size: int | None
    packaged: str | None = None  # "module:relative/path" inside an installed package


@dataclass(frozen=True)
class Quality:
    """A published quality figure and where it was published."""

    figure: str
    source: str


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
    family: str = DEMUCS
    author: str = "Meta AI Research (Défossez et al.)"
    licence: str = "MIT (code and weights)"
    published: Quality | None = None
    checkpoint: WeightFile | None = None  # RoFormer models: the .ckpt state dict
    config: WeightFile | None = None  # RoFormer models: the training YAML

    @property
    def is_bag(self) -> bool:
        return self.bag_size > 1

    @property
    def is_roformer(self) -> bool:
        return self.family in (BS_ROFORMER, MEL_ROFORMER)

    @property
    def weight_files(self) -> tuple[WeightFile, ...]:
        return tuple(f for f in (self.config, self.checkpoint) if f is not None)


DEMUCS_PAPER = "https://arxiv.org/abs/2211.08553"
# Median SDR per stem over the tracks audio-separator evaluated each model on
# (MUSDB18-HQ songs); the same harness for every model it lists.
AUDIO_SEPARATOR_SCORES = (
    "https://github.com/nomadkaraoke/python-audio-separator/blob/main/"
    "audio_separator/models-scores.json"
)
HF = "https://huggingface.co"
UVR_RESOURCES = f"{HF}/Politrees/UVR_resources/resolve/main/models/Roformer"

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "htdemucs", FOUR_STEMS, 1, 84, "Good", "Fast (GPU) / Slow (CPU)",
            "Hybrid Transformer Demucs: the general-purpose default.", HTDEMUCS_SEGMENT,
            published=Quality("9.00 dB average SDR, MUSDB18-HQ test", DEMUCS_PAPER),
        ),
        ModelSpec(
            "htdemucs_ft", FOUR_STEMS, 4, 336, "High", "Slower than htdemucs (4 networks)",
            "Four fine-tuned htdemucs specialists, one per stem; asking for one stem "
            "runs only its specialist.", HTDEMUCS_SEGMENT,
            published=Quality("9.20 dB average SDR, MUSDB18-HQ test", DEMUCS_PAPER),
        ),
        ModelSpec(
            "htdemucs_6s", SIX_STEMS, 1, 55, "Good", "Medium",
            "Six stems: adds guitar and piano (piano is the weakest).", HTDEMUCS_SEGMENT,
            published=Quality("vocals 9.57 dB median SDR", AUDIO_SEPARATOR_SCORES),
        ),
        ModelSpec(
            "mdx_extra", FOUR_STEMS, 4, 660, "High (vocals)", "Medium",
            "Bag of four Demucs v3 models from the MDX challenge, trained on extra data.",
            published=Quality(
                "no MUSDB18 figure (trained on its test set); 2nd in MDX 2021, track B",
                "https://github.com/facebookresearch/demucs/blob/main/docs/mdx.md",
            ),
        ),
        ModelSpec(
            "bs_roformer_6s", ("bass", "drums", "other", "vocals", "guitar", "piano"), 1, 699,
            "Very high", "~12 s per s of audio on a 2-core CPU; GPU recommended",
            "Band-Split RoFormer \"BS-RoFormer-SW\": six stems (adds guitar and piano), "
            "the community's six-stem RoFormer.",
            family=BS_ROFORMER,
            author="jarredou (BS-RoFormer-SW); re-upload with fixed keys by enerjazzer",
            licence="none stated by the author",
            published=Quality(
                "no per-stem figure published with the checkpoint",
                f"{HF}/enerjazzer/BS-ROFO-SW-Fixed",
            ),
            checkpoint=WeightFile(
                "BS-Rofo-SW-Fixed.ckpt",
                f"{HF}/enerjazzer/BS-ROFO-SW-Fixed/resolve/main/BS-Rofo-SW-Fixed.ckpt",
                "24e7d35ee9c64415673d3fd33e06a67cac2c103c5df6267ba1576459c775916e",
                699412152,
            ),
            config=WeightFile(
                "BS-Rofo-SW-Fixed.yaml", None, None, None,
                packaged="bs_roformer:configs/BS-Rofo-SW-Fixed.yaml",
            ),
        ),
        ModelSpec(
            "bs_roformer_vocals", ("vocals", "other"), 1, 639,
            "Very high (vocals)", "Not benched (config not in the package); GPU recommended",
            "Band-Split RoFormer vocal model by Gabox: vocals, and the rest of the mix as "
            "\"other\".",
            family=BS_ROFORMER,
            author="Gabox",
            licence="none stated by the author",
            published=Quality(
                "vocals 9.38 dB, instrumental 17.21 dB median SDR", AUDIO_SEPARATOR_SCORES
            ),
            checkpoint=WeightFile(
                "bs_roformer_vocals_gabox.ckpt",
                f"{UVR_RESOURCES}/BandSplit/bs_roformer_voc_gabox.ckpt",
                "18d58efe5e949e70fab11b875329af6d06ef11ccc29574bfe943fb57cc827f38",
                639254584,
            ),
            config=WeightFile(
                "config_bs_roformer_vocals_gabox.yaml",
                f"{UVR_RESOURCES}/BandSplit/config_bs_roformer_voc_gabox.yaml",
                "2bfdd16c656bd9519aba757cc4f8834b7ede675eb1e00ec4772d74ae1c41af7f",
                2273,
            ),
        ),
        ModelSpec(
            "mel_roformer_vocals", ("vocals", "other"), 1, 913,
            "Very high (vocals)", "~14 s per s of audio on a 2-core CPU; GPU recommended",
            "Kimberley Jensen's Mel-Band RoFormer vocal model: vocals, and the rest of "
            "the mix as \"other\".",
            family=MEL_ROFORMER,
            author="Kimberley Jensen",
            licence="none stated (no licence file in the author's repository)",
            published=Quality("vocals 12.60 dB median SDR", AUDIO_SEPARATOR_SCORES),
            checkpoint=WeightFile(
                "MelBandRoformer.ckpt",
                f"{HF}/KimberleyJSN/melbandroformer/resolve/main/MelBandRoformer.ckpt",
                "87201f4d31afb5bc79993230fc49446918425574db48c01c405e44f365c7559e",
                913106900,
            ),
            config=WeightFile(
                "config_vocals_mel_band_roformer.yaml", None, None, None,
                packaged="mel_band_roformer:configs/config_vocals_mel_band_roformer.yaml",
            ),
        ),
        ModelSpec(
            "mel_roformer_karaoke", ("vocals", "other"), 1, 913,
            "High (lead vocals)",
            "~14 s per s of audio on a 2-core CPU (as mel_roformer_vocals); GPU recommended",
            "Mel-Band RoFormer karaoke model: the lead vocals as \"vocals\", backing "
            "vocals stay with the instruments in \"other\".",
            family=MEL_ROFORMER,
            author="Gabox",
            licence="none stated by the author",
            published=Quality(
                "lead vocals 8.69 dB, rest 16.37 dB median SDR", AUDIO_SEPARATOR_SCORES
            ),
            checkpoint=WeightFile(
                "mel_band_roformer_karaoke_gabox.ckpt",
                f"{UVR_RESOURCES}/MelBand/mel_band_roformer_karaoke_gabox.ckpt",
                "303fc631e7aa587e9dc1e6ac4bb3667c6ba53aacb6b6a90abcfcf57935b92bd8",
                913026650,
            ),
            config=WeightFile(
                "config_mel_band_roformer_karaoke_gabox.yaml",
                f"{UVR_RESOURCES}/MelBand/config_MelBand-Roformer_Karaoke_by-Gabox.yaml",
                "16b726891076fd0bebab9ce038240b51afb22b04eac6026a7f0356178dcb65b7",
                1811,
            ),
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


DEFAULT_SHIFTS = 1
DEFAULT_OVERLAP = 0.25


def check_chunking(
    spec: ModelSpec, shifts: int, overlap: float, segment: float | None
) -> None:
    """Refuse Demucs' chunking options for a RoFormer model rather than ignore
    them: a RoFormer runs the chunking its config publishes (chunk_size,
    num_overlap), as its package does."""
    if not spec.is_roformer:
        return
    given = [
        name
        for name, asked in (
            ("--shifts", shifts > DEFAULT_SHIFTS),
            ("--overlap", overlap != DEFAULT_OVERLAP),
            ("--segment", segment is not None),
        )
        if asked
    ]
    if given:
        raise InvalidOptionError(
            f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to Demucs "
            f"models only; {spec.name} runs the chunking published in its config "
            "(chunk_size, num_overlap). Leave "
            f"{'them' if len(given) > 1 else 'it'} out."
        )


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
                + (" Use htdemucs_6s for guitar and piano (or bs_roformer_6s)."
                   if stem in SIX_STEMS else "")
            )
    if two_stems is not None:
        return (two_stems, f"no_{two_stems}")
    if stems is not None:
        return tuple(stems)
    return spec.stems
