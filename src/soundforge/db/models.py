"""The tables: users and their settings, API tokens, sessions, tracks, jobs, stems,
the LALAL.AI ledger.

Paths stored in the database are always **relative to** ``data_dir/uploads``
(``tracks/{track_id}/original.mp3``, ``stems/{job_id}/vocals.wav``), so a data
directory can be moved or mounted elsewhere and URLs stay clean
(``/files/stems/{job_id}/vocals.wav``).

Ownership is explicit on every row a user can reach (``user_id`` on tracks,
jobs and, through the job, stems), so every lookup can be scoped to the user.
Deleting a user deletes everything of theirs; deleting a track deletes its jobs
and stems (``ON DELETE CASCADE`` in the database; the files are removed by
``soundforge.library``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from soundforge.db.base import Base, UTCDateTime, new_uuid, utcnow


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
_STATUS_SQL = ", ".join(f"'{status.value}'" for status in JobStatus)
_ACTIVE_SQL = "status IN ('queued', 'running')"

ENGINES = ("local", "lalalai")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lower-cased (see soundforge.db.accounts): one account per address.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    settings: Mapped[UserSettings] = relationship(
        back_populates="user", uselist=False, cascade="all, delete-orphan", passive_deletes=True
    )
    tracks: Mapped[list[Track]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    api_tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class UserSettings(Base):
    """Per-user defaults for a new separation (the seed's Settings page)."""

    __tablename__ = "user_settings"
    __table_args__ = (
        CheckConstraint("engine IN ('local', 'lalalai')", name="engine"),
        CheckConstraint("output_format IN ('wav', 'flac', 'mp3')", name="output_format"),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    engine: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    demucs_model: Mapped[str] = mapped_column(
        String(64), default="htdemucs", server_default="htdemucs"
    )
    # None = the server's SOUNDFORGE_DEVICE ("auto" by default).
    device: Mapped[str | None] = mapped_column(String(16))
    output_format: Mapped[str] = mapped_column(String(8), default="wav", server_default="wav")
    # Fernet token (soundforge.db.security.encrypt_secret); never the key itself.
    lalalai_key_encrypted: Mapped[str | None] = mapped_column(Text)
    # The key's last four characters, to show it masked without decrypting it.
    lalalai_key_last4: Mapped[str | None] = mapped_column(String(8))
    # LALAL.AI separations process only the first 60 s unless the user unticks it:
    # a preview costs at most one minute per stem, a mistaken full run costs the track.
    lalalai_preview: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true()
    )
    # How ZIP downloads name their entries ("{track}-{stem}.{ext}", see
    # soundforge.export.naming); None keeps the built-in layout.
    filename_template: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship(back_populates="settings")

    @property
    def has_lalalai_key(self) -> bool:
        return self.lalalai_key_encrypted is not None


class ApiToken(Base):
    """A personal token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # First characters of the token, so a user can tell their tokens apart.
    token_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="api_tokens")


class Track(Base):
    __tablename__ = "tracks"
    __table_args__ = (Index("ix_tracks_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(512))
    artist: Mapped[str | None] = mapped_column(String(512))
    album: Mapped[str | None] = mapped_column(String(512))
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    sample_rate: Mapped[int] = mapped_column(Integer, default=0)
    channels: Mapped[int] = mapped_column(Integer, default=0)
    codec: Mapped[str | None] = mapped_column(String(64))
    # The name the file had when uploaded (for display and downloads).
    original_filename: Mapped[str] = mapped_column(String(512))
    # Relative to uploads/: tracks/{track_id}/original.{ext}
    file_path: Mapped[str] = mapped_column(String(1024))
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)
    # SHA-256 of the file's bytes: the same audio uploaded twice is recognised.
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    # Relative to uploads/: tracks/{track_id}/cover.{jpg|png}, from the file's tags.
    artwork_path: Mapped[str | None] = mapped_column(String(1024))
    artwork_mime: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="tracks")
    jobs: Mapped[list[ProcessingJob]] = relationship(
        back_populates="track",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ProcessingJob.created_at",
    )
    # Read-only: stems are created and deleted through their job.
    stems: Mapped[list[Stem]] = relationship(back_populates="track", viewonly=True)

    def __repr__(self) -> str:
        return f"<Track {self.id} {self.title!r}>"


class ProcessingJob(Base):
    """One separation of one track: the seed's ``ProcessingJob``.

    The row is the source of truth for a job; the queue only carries a wake-up
    (the job id). See docs/pipeline.md for the life cycle.
    """

    __tablename__ = "processing_jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_SQL})", name="status"),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress"),
        CheckConstraint("engine IN ('local', 'lalalai')", name="engine"),
        # At most one queued/running job per (track, request): a double click
        # cannot create two, even from two web processes at once.
        Index(
            "uq_processing_jobs_active_request",
            "track_id",
            "options_key",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
        Index("ix_processing_jobs_status", "status"),
        Index("ix_processing_jobs_user_created", "user_id", "created_at"),
        Index("ix_processing_jobs_reuse", "content_hash", "options_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    track_id: Mapped[str] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), index=True
    )
    engine: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(64))
    # The validated SeparationOptions (soundforge.jobs.options.options_to_dict).
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # SHA-256 of engine + model + the options that change the output: equal keys
    # on equal audio mean equal stems (reuse) or the same request (double click).
    options_key: Mapped[str] = mapped_column(String(64))
    # The track's content hash when the job was made (reuse looks jobs up by it).
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(
        String(16), default=JobStatus.QUEUED.value, server_default=JobStatus.QUEUED.value
    )
    progress: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    # LALAL.AI task ids of this job's current (or last) run, recorded as each
    # task starts (to cancel them, or to find them on the provider's side);
    # empty for the local engine.
    provider_task_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The file that run uploaded to LALAL.AI: if its worker dies, recovery
    # deletes it there (the dead run's own clean-up never ran).
    provider_source_id: Mapped[str | None] = mapped_column(String(64))
    # How many times a worker claimed the job (a retry after a crash adds one).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # What happened to earlier attempts, oldest first: one {"at", "attempt",
    # "event", "message"} per run that ended without an answer (its runner or
    # worker died), so a retried job still shows why it was retried.
    history: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    # "host/pid/start" of the worker process running it, and its last sign of life.
    worker_id: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When stems were reused instead of computed: the job they came from.
    reused_from_job_id: Mapped[str | None] = mapped_column(String(36))
    # Last time a queue task was sent for this job (the reconciler re-sends
    # tasks for queued jobs that have none).
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on every change that is published: lets a subscriber that reads a
    # snapshot and then live events drop the ones it has already seen.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    track: Mapped[Track] = relationship(back_populates="jobs")
    user: Mapped[User] = relationship()
    stems: Mapped[list[Stem]] = relationship(
        back_populates="job",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Stem.id",
    )

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def is_final(self) -> bool:
        return self.job_status.is_final

    def __repr__(self) -> str:
        return (
            f"<ProcessingJob {self.id} {self.engine}/{self.model} {self.status} {self.progress}%>"
        )


class Stem(Base):
    __tablename__ = "stems"
    __table_args__ = (UniqueConstraint("job_id", "stem_type", name="uq_stems_job_stem"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("processing_jobs.id", ondelete="CASCADE"), index=True
    )
    track_id: Mapped[str] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    stem_type: Mapped[str] = mapped_column(String(64))
    # Relative to uploads/: stems/{job_id}/{stem}.{ext}
    file_path: Mapped[str] = mapped_column(String(1024))
    format: Mapped[str] = mapped_column(String(8))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    duration: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[ProcessingJob] = relationship(back_populates="stems")
    track: Mapped[Track] = relationship(back_populates="stems", viewonly=True)

    def __repr__(self) -> str:
        return f"<Stem {self.id} {self.stem_type} {self.file_path}>"


class LoginFailure(Base):
    """One failed sign-in. Kept in the database, not in a process, so every web
    process of an installation counts the same attempts. The key is a hash of
    ``address|email`` or of the address alone: no email is stored for a failed
    attempt."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    # Unix time, the clock every process of an installation shares.
    at: Mapped[float] = mapped_column(Float, index=True)


class LoginKnownAddress(Base):
    """An address an account signed in from (a hash of both, like
    ``login_failures``). When an address is over its limit for failed sign-ins,
    accounts that signed in from it before may still try: one client guessing
    made-up emails cannot lock its neighbours out."""

    __tablename__ = "login_known_addresses"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)  # Unix time of the last sign-in


class WebSession(Base):
    """A signed-in browser session. The cookie carries a random id; only its
    SHA-256 is stored, and the session is valid only while its row exists. So
    logging out, changing the password and "log out everywhere" end sessions
    on the server, not only in the browser that asked."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class InstallationSecret(Base):
    """Proof of which server secret wrote this database: an HMAC of a fixed
    text under a key derived from ``SOUNDFORGE_SECRET_KEY``. A node started with
    another secret could read neither the stored LALAL.AI keys nor the
    sessions; it compares this row at start and refuses to run."""

    __tablename__ = "installation_secret"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LalalaiUsage(Base):
    """LALAL.AI minutes charged for one provider task, shared by every node.
    ``key_id`` is the key's fingerprint (``engines.lalalai.keys.key_id``),
    never the key; a task is counted once however often it is reported."""

    __tablename__ = "lalalai_usage"
    __table_args__ = (UniqueConstraint("key_id", "task_id", name="uq_lalalai_usage_key_task"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    task_id: Mapped[str] = mapped_column(String(128))
    seconds: Mapped[int] = mapped_column(Integer)
    stems: Mapped[int] = mapped_column(Integer)
    minutes: Mapped[float] = mapped_column(Float)
    source_name: Mapped[str] = mapped_column(String(512), default="", server_default="")
    preview: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Charged although it did not finish (cancelled, or its run stopped).
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    at: Mapped[float] = mapped_column(Float)  # Unix time


class ProviderRelease(Base):
    """LALAL.AI work a job left behind (unfinished tasks, an uploaded file)
    that could not be released when the job ended, because the provider was
    unreachable. Workers retry it with backoff until it is done."""

    __tablename__ = "lalalai_releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The key is found again through the owner (their key, else the installation's).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    job_id: Mapped[str | None] = mapped_column(String(36))
    key_id: Mapped[str] = mapped_column(String(64))
    task_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    source_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)  # Unix time
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
