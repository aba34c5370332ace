"""Request and response shapes of the REST API (they document /docs too)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable identifier, e.g. not_found, invalid_option, "
                      "quota_exceeded, auth_error, too_large, invalid_input, unauthenticated")
    message: str = Field(description="What happened and what to do, for people")


class ErrorOut(BaseModel):
    error: ErrorDetail


class TrackOut(BaseModel):
    id: str
    title: str
    artist: str | None
    album: str | None
    duration: float = Field(description="Seconds")
    sample_rate: int
    channels: int
    codec: str | None
    original_filename: str
    file_size: int
    has_artwork: bool
    artwork_url: str
    created_at: str | None
    url: str
    export_url: str = Field(description="All stems of the track as a ZIP")


class TrackList(BaseModel):
    tracks: list[TrackOut]


class UploadError(BaseModel):
    filename: str
    code: str
    message: str


class UploadOut(BaseModel):
    tracks: list[TrackOut]
    errors: list[UploadError] = Field(description="Files refused (the others were added)")


class StemOut(BaseModel):
    id: int
    job_id: str
    track_id: str
    stem: str = Field(description="vocals, drums, bass, other, guitar, piano, … or no_<stem>")
    format: str
    size_bytes: int
    duration: float | None
    file_path: str
    file_url: str = Field(description="GET it to stream the file (supports Range)")
    download_url: str = Field(description="GET it to download with a friendly file name")


class StemList(BaseModel):
    stems: list[StemOut]


class PeaksOut(BaseModel):
    stem_id: int
    version: int
    duration: float = Field(description="seconds, as decoded")
    mins: list[float] = Field(description="lowest sample of each slice (≤ 0), in time order")
    maxs: list[float] = Field(description="highest sample of each slice (≥ 0)")


class JobOut(BaseModel):
    id: str
    track_id: str
    engine: str
    model: str
    options: dict[str, Any]
    status: str = Field(description="queued, running, completed, failed or cancelled")
    progress: int = Field(ge=0, le=100)
    error: str | None
    error_code: str | None
    reused_from_job_id: str | None
    provider_task_ids: list[str] = Field(
        description="LALAL.AI: the provider's task ids, recorded as each task starts "
        "(to match charges on your LALAL.AI account); empty for the local engine"
    )
    provider_source_id: str | None = Field(
        description="LALAL.AI: the uploaded file's id at the provider (deleted there "
        "when the job ends)"
    )
    attempts: int = Field(description="How many times a worker started this job")
    history: list[dict[str, Any]] = Field(
        description="Why earlier attempts ended without an answer, oldest first: "
        "{at, attempt, event (runner_lost or worker_lost), message}"
    )
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    url: str
    events_url: str = Field(description="Server-Sent Events: one 'job' event per change")
    stems_url: str
    stems: list[StemOut] | None = None


class JobList(BaseModel):
    jobs: list[JobOut]


class SeparationIn(BaseModel):
    """Anything left out comes from your settings (engine, model, format, preview)."""

    model_config = ConfigDict(extra="forbid")

    engine: str | None = Field(None, description="local or lalalai")
    model: str | None = Field(None, description="Demucs model (local): htdemucs, htdemucs_ft, "
                              "htdemucs_6s, mdx_extra")
    stems: list[str] | None = Field(None, description="Stems to produce; default: all of the "
                                    "model's (local)")
    two_stems: str | None = Field(None, description="Karaoke mode: this stem and no_<stem>")
    format: str | None = Field(None, description="wav, flac or mp3")
    wav_depth: str | None = Field(None, description="16, 24 or float")
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
    splitter: str | None = None
    extraction_level: str | None = None
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

    engine: str | None = None
    demucs_model: str | None = None
    device: str | None = None
    output_format: str | None = None
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
