"""A separation request as the runner sees it (parsed from one protocol line)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from soundforge.engines.base import SeparationOptions


@dataclass(frozen=True)
class RunRequest:
    id: str
    input: str
    output_dir: str
    model: str
    repo: str | None = None
    stems: tuple[str, ...] | None = None
    two_stems: str | None = None
    format: str = "wav"
    wav_depth: str = "16"
    mp3_bitrate: int = 320
    sample_rate: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    batch: int | None = None  # segments per forward call; None = chosen by the backend
    shifts: int = 1
    overlap: float = 0.25
    segment: float | None = None
    seed: int | None = None
    threads: int = 0

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> RunRequest:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in message.items() if key in known}
        if values.get("stems") is not None:
            values["stems"] = tuple(values["stems"])
        return cls(**values)

    @classmethod
    def build(
        cls,
        request_id: str,
        input_path: Path,
        output_dir: Path,
        options: SeparationOptions,
        *,
        repo: Path | None,
        device: str,
        threads: int,
        precision: str = "fp32",
    ) -> RunRequest:
        return cls(
            id=request_id,
            input=str(input_path.resolve()),
            output_dir=str(output_dir.resolve()),
            model=options.model,
            repo=str(repo.resolve()) if repo is not None else None,
            stems=options.stems,
            two_stems=options.two_stems,
            format=options.format,
            wav_depth=options.wav_depth,
            mp3_bitrate=options.mp3_bitrate,
            sample_rate=options.sample_rate,
            device=device,
            precision=precision,
            batch=options.batch,
            shifts=options.shifts,
            overlap=options.overlap,
            segment=options.segment,
            seed=options.seed,
            threads=threads,
        )

    def to_message(self) -> dict[str, Any]:
        message = asdict(self)
        message["type"] = "separate"
        if self.stems is not None:
            message["stems"] = list(self.stems)
        return message
