"""Request and response shapes of the REST API (they document /docs too).

The JSON of tracks, stems and jobs is built from their rows in ``resources``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from soundforge.config import DEVICE_SYNTAX
from soundforge.web import catalog
from soundforge.web.resources import JobOut, StemOut, TrackOut


def _enum(values: Any) -> WithJsonSchema:
    """A string documented with its allowed values (an OpenAPI ``enum``).

    Validation stays with the engines, so that a wrong value gets their
    ``invalid_option`` message (which says what to use), not a schema error."""
    return WithJsonSchema({"type": "string", "enum": list(values)})


Engine = Annotated[str, _enum(catalog.ENGINE_LABELS)]
# A model or an ensemble preset (what the settings store) …
Model = Annotated[str, _enum(catalog.picker_names())]
# … and for a separation also any ensemble (an open set, documented by examples).
SeparationModel = Annotated[
    str,
    WithJsonSchema({
        "type": "string",
        "examples": [*catalog.picker_names(), "htdemucs_ft+mdx_extra",
                     "htdemucs_ft:2+mdx_extra", "max-spec/htdemucs_ft+mdx_extra",
                     "htdemucs_ft@drums,bass+htdemucs_6s"],
    }),
]
StemName = Annotated[str, _enum(catalog.all_stems())]
OutputFormat = Annotated[str, _enum(catalog.OUTPUT_FORMATS)]
WavDepth = Annotated[str, _enum(catalog.WAV_DEPTHS)]
Splitter = Annotated[str, _enum(catalog.SPLITTER_NAMES)]
ExtractionLevel = Annotated[str, _enum(catalog.EXTRACTION_LEVEL_NAMES)]
# Any torch device string: an open set, documented by its pattern (auto, cpu,
# cuda, cuda:N, mps); the worker's machine decides which ones exist.
Device = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": DEVICE_SYNTAX.pattern,
                    "examples": ["auto", "cpu", "cuda", "cuda:1", "mps"]}),
]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable identifier, e.g. not_found, invalid_option, "
                      "quota_exceeded, auth_error, too_large, invalid_input, unauthenticated")
    message: str = Field(description="What happened and what to do, for people")


class ErrorOut(BaseModel):
    error: ErrorDetail


# What each error status means in this API (its stable codes), for /docs.
ERROR_MEANINGS: dict[int, str] = {
    401: "unauthenticated: no session, no or bad token",
    402: "quota_exceeded: not enough LALAL.AI minutes for this job",
    403: "csrf_failed: a change authenticated by the session cookie without the "
         "X-CSRF-Token header (tokens need none)",
    404: "not_found: no such item, or not yours",
    413: "too_large: larger than the upload limit",
    422: "invalid_option, invalid_request or invalid_input; auth_error when the LALAL.AI "
         "key is missing or refused",
    500: "internal_error (logged on the server)",
    502: "provider_error: LALAL.AI failed or cannot be reached",
    503: "the model or the job queue is not available right now; try again",
}


def error_responses(*statuses: int, **special: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (``special``: a route's own
    wording, keyed ``s500`` …), all with the ``ErrorOut`` body."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = special.get(f"s{status}", ERROR_MEANINGS[status])
        out[status] = {"model": ErrorOut, "description": description}
    return out


class TrackList(BaseModel):
    tracks: list[TrackOut]


class UploadError(BaseModel):
    filename: str
    code: str
    message: str


class UploadOut(BaseModel):
    tracks: list[TrackOut]
    errors: list[UploadError] = Field(description="Files refused (the others were added)")


class StemList(BaseModel):
    stems: list[StemOut]


class PeaksOut(BaseModel):
    stem_id: int
    version: int
    duration: float = Field(description="seconds, as decoded")
    mins: list[float] = Field(description="lowest sample of each slice (≤ 0), in time order")
    maxs: list[float] = Field(description="highest sample of each slice (≥ 0)")


class TrackPeaksOut(BaseModel):
    track_id: str
    version: int
    duration: float = Field(description="seconds, as decoded")
    mins: list[float]
    maxs: list[float]


class JobList(BaseModel):
    jobs: list[JobOut]


class SeparationIn(BaseModel):
    """Anything left out comes from your settings (engine, model, format, preview)."""

    model_config = ConfigDict(extra="forbid")

    engine: Engine | None = Field(None, description="local or lalalai")
    model: SeparationModel | None = Field(
        None,
        description="Local model, ensemble preset, or ensemble: models joined by '+', "
        "each optionally with ':WEIGHT' and '@STEM,STEM' (the stems it gives), optionally "
        "preceded by 'max-spec/' or 'min-spec/' (default: weighted average). "
        "GET /api/models lists models and presets.",
    )
    stems: list[StemName] | None = Field(None, description="Stems to produce; default: all "
                                         "of the model's (local)")
    two_stems: StemName | None = Field(None, description="Karaoke mode: this stem and "
                                       "no_<stem>")
    format: OutputFormat | None = Field(None, description="Output format of the stems")
    wav_depth: WavDepth | None = Field(None, description="WAV sample format")
    mp3_bitrate: int | None = None
    sample_rate: int | None = None
    device: str | None = Field(None, description="Local: auto, cpu, cuda, cuda:N or mps; "
                               "default: your settings")
    precision: str | None = Field(None, description="Local: fp32 (exact, default), bf16 or "
                                  "fp16 where the worker's device runs them natively")
    batch: int | None = Field(None, description="Local: segments per model call; default: "
                              "from free GPU memory")
    shifts: int | None = None
    overlap: float | None = None
    segment: float | None = None
    seed: int | None = None
    preview: bool | None = Field(None, description="LALAL.AI: separate only the first 60 s")
    splitter: Splitter | None = Field(None, description="LALAL.AI: the neural network; "
                                      "default auto")
    extraction_level: ExtractionLevel | None = Field(None, description="LALAL.AI: "
                                                     "deep_extraction (default) or clear_cut")
    enhanced_processing: bool | None = None
    noise_cancelling: bool | None = None
    force: bool = Field(False, description="Run again even if identical stems already exist")


class SettingsOut(BaseModel):
    engine: str
    demucs_model: str
    device: str
    output_format: str
    lalalai_preview: bool
    lalalai_key_set: bool
    lalalai_key_masked: str | None
    filename_template: str | None = Field(
        None, description="How ZIP downloads name entries; null: the built-in layout"
    )


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: Engine | None = None
    demucs_model: Model | None = None
    device: Device | None = None
    output_format: OutputFormat | None = None
    lalalai_preview: bool | None = None
    lalalai_api_key: str | None = Field(
        None, description="Your LALAL.AI key (stored encrypted); an empty string removes it"
    )
    filename_template: str | None = Field(
        None,
        description='Names of ZIP entries, e.g. "{track}/{stem}.{ext}"; variables {track} '
        "{stem} {ext} {model} {engine} {date}; an empty string or null: the built-in layout",
    )


class QuotaOut(BaseModel):
    quota_minutes: float
    used_minutes: float
    remaining_minutes: float


class TestKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, description="A key to test; default: your saved key")


class EstimateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track_id: str
    stems: list[StemName] | None = Field(None, description="default: vocals")
    two_stems: StemName | None = None
    preview: bool = Field(False, description="Only the first 60 s")


class EstimateOut(BaseModel):
    minutes: float = Field(description="What LALAL.AI will charge: seconds × stems / 60")
    seconds: int = Field(description="Billable seconds (whole, rounded up)")
    stems: int = Field(description="Stems LALAL.AI charges for")


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str | None = Field(None, description="The job whose LALAL.AI task to cancel; "
                               "default: your most recent active LALAL.AI job")


class CancelOut(BaseModel):
    cancelled: int
    job_ids: list[str]
    provider_tasks_cancelled: int = 0


class MeOut(BaseModel):
    id: int
    email: str
    display_name: str | None


class ModelOut(BaseModel):
    name: str
    engine: str
    stems: list[str]
    quality: str
    speed: str
    cost: str
    description: str
