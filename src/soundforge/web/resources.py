"""The JSON of a track, a stem and a job: one pydantic model each, built from the
database row (``model_validate`` reads its attributes).

The REST API answers with them, the pages' JSON answers (``Accept:
application/json``, the cancel button) too, and the job's live stream (SSE)
sends ``JobEventOut``, which shares the job's state fields with ``JobOut`` so
that a page reads the same names from both. ``/docs`` documents them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    computed_field,
)

from soundforge.db import ProcessingJob, Stem, Track
from soundforge.jobs.events import JobEvent


def _isoformat(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# ``datetime.isoformat()`` ("+00:00"), as the API always wrote, not pydantic's "Z".
Timestamp = Annotated[datetime | None, PlainSerializer(_isoformat, return_type=str | None)]
# A NULL JSON column reads as empty.
JsonObject = Annotated[dict[str, Any], BeforeValidator(lambda value: dict(value or {}))]
JsonList = Annotated[list[Any], BeforeValidator(lambda value: list(value or []))]


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    def json_dict(self) -> dict[str, Any]:
        """What the API sends, for a route that answers with its own ``JSONResponse``."""
        return self.model_dump(mode="json")


class TrackOut(_FromRow):
    id: str
    title: str
    artist: str | None
    album: str | None
    duration: Annotated[float, BeforeValidator(lambda value: round(value or 0.0, 3))] = Field(
        description="Seconds")
    sample_rate: int
    channels: int
    codec: str | None
    original_filename: str
    file_size: int
    has_artwork: Annotated[bool, BeforeValidator(lambda path: path is not None)] = Field(
        validation_alias="artwork_path")
    created_at: Timestamp

    @computed_field  # type: ignore[prop-decorator]
    @property
    def artwork_url(self) -> str:
        return f"/tracks/{self.id}/artwork"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        return f"/api/tracks/{self.id}"

    @computed_field(description="All stems of the track as a ZIP")  # type: ignore[prop-decorator]
    @property
    def export_url(self) -> str:
        return f"/export/stems/{self.id}"

    @classmethod
    def from_row(cls, row: Track) -> TrackOut:
        return cls.model_validate(row)


class StemOut(_FromRow):
    id: int
    job_id: str
    track_id: str
    stem: str = Field(validation_alias="stem_type",
                      description="vocals, drums, bass, other, guitar, piano, … or no_<stem>")
    format: str
    size_bytes: int
    duration: float | None
    file_path: str

    @computed_field(description="GET it to stream the file (supports Range)")  # type: ignore[prop-decorator]
    @property
    def file_url(self) -> str:
        return f"/files/{self.file_path}"

    @computed_field(description="GET it to download with a friendly file name")  # type: ignore[prop-decorator]
    @property
    def download_url(self) -> str:
        return f"/export/stem/{self.id}"

    @classmethod
    def from_row(cls, row: Stem) -> StemOut:
        return cls.model_validate(row)


class JobStateOut(_FromRow):
    """Where a job stands: the fields the job's JSON and its live events share."""

    # A job row calls it ``id``, an event ``job_id``.
    id: str = Field(validation_alias=AliasChoices("id", "job_id"))
    track_id: str
    status: str = Field(description="queued, running, completed, failed or cancelled "
                        "(deleted: only in events)")
    progress: int = Field(ge=0, le=100)
    error: str | None = Field(validation_alias="error_message")
    error_code: str | None


class JobOut(JobStateOut):
    engine: str
    model: str
    options: JsonObject
    reused_from_job_id: str | None
    provider_task_ids: Annotated[
        list[str], BeforeValidator(lambda ids: [str(task_id) for task_id in ids or []])
    ] = Field(
        description="LALAL.AI: the provider's task ids, recorded as each task starts "
        "(to match charges on your LALAL.AI account); empty for the local engine"
    )
    provider_source_id: str | None = Field(
        description="LALAL.AI: the uploaded file's id at the provider (deleted there "
        "when the job ends)"
    )
    attempts: int = Field(description="How many times a worker started this job")
    history: JsonList = Field(
        description="Why earlier attempts ended without an answer, oldest first: "
        "{at, attempt, event (runner_lost or worker_lost), message}"
    )
    created_at: Timestamp
    started_at: Timestamp
    finished_at: Timestamp
    # Filled only where a route asks for them (``with_stems``): a job row read
    # without its stems must not load them one job at a time.
    # (the alias names no attribute of the row, so validation never reads them).
    stems: list[StemOut] | None = Field(None, validation_alias="__set_by_from_row__")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        return f"/api/jobs/{self.id}"

    @computed_field(description="Server-Sent Events: one 'job' event per change")  # type: ignore[prop-decorator]
    @property
    def events_url(self) -> str:
        return f"/api/jobs/{self.id}/events"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def stems_url(self) -> str:
        return f"/api/jobs/{self.id}/stems"

    @classmethod
    def from_row(cls, row: ProcessingJob, *, with_stems: bool = False) -> JobOut:
        job = cls.model_validate(row)
        if with_stems:
            job.stems = stems_out(row.stems)
        return job


class JobEventOut(JobStateOut):
    """One ``job`` event of a live stream: the job's state after a change."""

    job_id: str
    version: int = Field(description="Grows with every change of the job")
    updated_at: str | None

    @classmethod
    def from_event(cls, event: JobEvent) -> JobEventOut:
        return cls.model_validate(event)


def stems_out(rows: Iterable[Stem]) -> list[StemOut]:
    return [StemOut.from_row(row) for row in rows]
