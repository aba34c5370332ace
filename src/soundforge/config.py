"""Configuration from the environment (``SOUNDFORGE_*``), the same for CLI, web and worker.

Every knob has a default that works on a laptop with nothing set. Settings are
read when asked for (``get_settings()``), not at import, so a test or a
sub-process sees the environment it was started with.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PrecisionChoice = Literal["fp32", "bf16", "fp16"]
# A torch device string as the official CLI takes it, or "auto".
DEVICE_SYNTAX = re.compile(r"^(?:auto|cpu|mps|cuda)$|^(?:cuda|mps):\d+$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOUNDFORGE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Where the database, the queue, uploads and stems live.",
    )

    # --- local engine -------------------------------------------------------
    model_repo: Path | None = Field(
        default=None,
        description="A local model repository used instead of the Hugging Face hub and "
        "the download cache: Demucs files ({sig}.th + {name}.yaml) and RoFormer files "
        "(config .yaml + .ckpt under their published names).",
    )
    device: str = Field(
        default="auto",
        description="Compute device: auto (CUDA, else Apple MPS, else the CPU), cpu, cuda, "
        "cuda:N or mps. With several GPUs and `auto`/`cuda`, each worker thread's runner "
        "takes its own GPU.",
    )
    precision: PrecisionChoice = Field(
        default="fp32",
        description="fp32 reproduces the reference; bf16/fp16 are faster where the device "
        "runs them natively (GPUs; bf16 on CPUs with AMX or AVX512-BF16).",
    )
    threads: int = Field(
        default=0,
        ge=0,
        json_schema_extra={"shown_default": "`0` (shared)"},
        description="CPU threads per runner; 0 = the cores shared equally between the "
        "worker's concurrent runners (all of them for the CLI). More threads than the "
        "runner's share of the cores makes it slower, not faster: its threads wait for "
        "each other at every layer.",
    )
    demucs_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds the runner may go without reporting progress before the job "
        "is declared stalled and the runner is killed. Progress arrives once per "
        "segment (a few seconds of audio), so a long song on a slow CPU is never cut "
        "off as long as it keeps moving.",
    )
    demucs_max_time: float = Field(
        default=0.0,
        ge=0,
        description="Optional hard ceiling in seconds for one separation; 0 = none.",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        value = value.strip().lower()
        if not DEVICE_SYNTAX.match(value):
            raise ValueError("use auto, cpu, cuda, cuda:N (N = GPU number) or mps")
        return value

    # --- LALAL.AI -----------------------------------------------------------
    lalalai_url: str = Field(
        default="https://www.lalal.ai/api/v1/",
        description="Base URL of the LALAL.AI API (a proxy or a test server).",
    )
    lalalai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LALALAI_API_KEY", "SOUNDFORGE_LALALAI_API_KEY"),
        description="Your LALAL.AI license key (a key saved in the web app's settings wins).",
    )
    system_lalalai_activation_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SYSTEM_LALALAI_ACTIVATION_KEY", "SOUNDFORGE_SYSTEM_LALALAI_ACTIVATION_KEY"
        ),
        description="The installation's LALAL.AI key, used when a user has none.",
    )
    lalalai_poll_interval: float = Field(
        default=2.0, gt=0,
        description="Seconds between two questions to LALAL.AI about a running task.",
    )
    lalalai_retry_base_delay: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="Seconds before the first retry of a failed LALAL.AI request; each "
        "further retry waits twice as long (with jitter, at most 20 s).",
    )

    # --- service ------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. `postgresql+psycopg://user:pw@host/db` (psycopg 3) "
        "for many machines.",
        json_schema_extra={"shown_default": "SQLite in the data dir (`soundforge.db`)"},
    )
    queue_url: str | None = Field(
        default=None,
        description="`redis://host:6379/0` for many machines: the Redis queue and Redis "
        "pub/sub for live progress.",
        json_schema_extra={"shown_default": "a SQLite queue in the data dir (`queue.db`)"},
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs sessions and derives the key that encrypts stored API keys; must "
        "be the same on every machine of an installation (a node with another one refuses "
        "to start).",
        json_schema_extra={"shown_default": "generated into the data dir (`secret_key`)"},
    )
    host: str = Field(default="127.0.0.1", description="Where `soundforge serve` listens.")
    port: int = Field(default=8000, description="The port `soundforge serve` listens on.")
    signup: Literal["open", "closed"] = Field(
        default="open",
        description="open: anyone who reaches the site may create an account (one "
        "laptop, a trusted network). closed: only the first account is created on the "
        "site; the administrator adds the others with `soundforge users add EMAIL`.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (CIDR) of the reverse proxies "
        "whose X-Forwarded-For / X-Forwarded-Proto headers are believed. Empty (the "
        "default): no forwarded header is believed, and a client's address is the "
        "connection's; otherwise any client could name itself another address and escape "
        "the login rate limit.",
    )
    max_upload_mb: int = Field(
        default=500, gt=0, description="The largest upload accepted, in MB (the web app and "
        "`import_track`)."
    )
    player_decode_limit_minutes: float = Field(
        default=30.0,
        ge=0,
        description="The web player decodes a separation's stems in the browser (sample-exact "
        "sync) up to this many minutes of stems in all (duration × stems), and streams them "
        "beyond, so a long DJ set does not need gigabytes of browser memory.",
    )

    @property
    def uploads_dir(self) -> Path:
        """Where tracks and stems are stored (the database holds paths relative to
        it). Absolute, so that a later ``chdir`` does not move it; the one place
        this folder is computed."""
        return Path(self.data_dir).absolute() / "uploads"


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    return Settings()
