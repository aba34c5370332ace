"""The LALAL.AI answers SoundForge reads, as typed values, and their parsing.

The client turns JSON into these; everything above the client (the poller,
the run, the release helpers) works with them and never with raw JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

TaskState = Literal["progress", "success", "error", "cancelled", "server_error"]
FINAL_STATES: frozenset[str] = frozenset({"success", "error", "cancelled", "server_error"})


@dataclass(frozen=True)
class UploadedSource:
    id: str
    name: str
    size: int
    duration: int
    expires: int


@dataclass(frozen=True)
class Track:
    type: str  # "stem" or "back"
    label: str
    url: str


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    state: str
    progress: int = 0
    tracks: tuple[Track, ...] = ()
    duration: int | None = None
    error: str | None = None
    error_code: str | None = None
    source_id: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class CancelOutcome:
    task_id: str
    ok: bool
    error: str | None = None


def parse_status(task_id: str, entry: dict[str, Any]) -> TaskStatus:
    state = str(entry.get("status", ""))
    source_id = entry.get("source_id")
    source = str(source_id) if source_id is not None else None
    if state == "progress":
        try:
            progress = int(entry.get("progress", 0))
        except (TypeError, ValueError):
            progress = 0
        return TaskStatus(task_id, state, progress=max(0, min(100, progress)), source_id=source)
    if state == "success":
        result = entry.get("result") or {}
        tracks = tuple(
            Track(type=str(item.get("type", "")), label=str(item["label"]), url=str(item["url"]))
            for item in result.get("tracks", [])
            if isinstance(item, dict) and "label" in item and "url" in item
        )
        duration = result.get("duration")
        return TaskStatus(
            task_id, state, progress=100, tracks=tracks,
            duration=int(duration) if isinstance(duration, int | float) else None,
            source_id=source,
        )
    error = entry.get("error")
    if isinstance(error, dict):
        return TaskStatus(
            task_id, state or "error", error=str(error.get("detail", "")) or None,
            error_code=error.get("code"), source_id=source,
        )
    return TaskStatus(
        task_id, state or "server_error", error=str(error) if error else None, source_id=source
    )


def parse_cancel(data: Any) -> dict[str, CancelOutcome]:
    result = data.get("result") if isinstance(data, dict) else None
    outcomes: dict[str, CancelOutcome] = {}
    if not isinstance(result, dict):
        return outcomes
    for task_id, entry in result.items():
        ok = isinstance(entry, dict) and entry.get("status") == "success"
        error = None if ok or not isinstance(entry, dict) else str(entry.get("error", ""))
        outcomes[str(task_id)] = CancelOutcome(str(task_id), ok, error)
    return outcomes
