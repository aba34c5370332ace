"""Rows → the JSON the REST API answers (the same shapes in every route)."""

from __future__ import annotations

from typing import Any

from soundforge.db import ProcessingJob, Stem, Track


def track_dict(track: Track) -> dict[str, Any]:
    return {
        "id": track.id,
        "title": track.title,
        "artist": track.artist,
        "album": track.album,
        "duration": round(track.duration or 0.0, 3),
        "sample_rate": track.sample_rate,
        "channels": track.channels,
        "codec": track.codec,
        "original_filename": track.original_filename,
        "file_size": track.file_size,
        "has_artwork": track.artwork_path is not None,
        "artwork_url": f"/tracks/{track.id}/artwork",
        "created_at": track.created_at.isoformat() if track.created_at else None,
        "url": f"/api/tracks/{track.id}",
        "export_url": f"/export/stems/{track.id}",
    }


def stem_dict(stem: Stem) -> dict[str, Any]:
    return {
        "id": stem.id,
        "job_id": stem.job_id,
        "track_id": stem.track_id,
        "stem": stem.stem_type,
        "format": stem.format,
        "size_bytes": stem.size_bytes,
        "duration": stem.duration,
        "file_path": stem.file_path,
        "file_url": f"/files/{stem.file_path}",
        "download_url": f"/export/stem/{stem.id}",
    }


def job_dict(job: ProcessingJob, *, with_stems: bool = False) -> dict[str, Any]:
    options = dict(job.options or {})
    data: dict[str, Any] = {
        "id": job.id,
        "track_id": job.track_id,
        "engine": job.engine,
        "model": job.model,
        "options": options,
        "status": job.status,
        "progress": job.progress,
        "error": job.error_message,
        "error_code": job.error_code,
        "reused_from_job_id": job.reused_from_job_id,
        "provider_task_ids": [str(task_id) for task_id in job.provider_task_ids or []],
        "provider_source_id": job.provider_source_id,
        "attempts": job.attempts,
        "history": list(job.history or []),
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "url": f"/api/jobs/{job.id}",
        "events_url": f"/api/jobs/{job.id}/events",
        "stems_url": f"/api/jobs/{job.id}/stems",
    }
    if with_stems:
        data["stems"] = [stem_dict(stem) for stem in job.stems]
    return data


def job_summary(job: ProcessingJob) -> str:
    """'vocals, drums · WAV · preview' for a job card."""
    options = job.options or {}
    parts = []
    stems = options.get("stems")
    two = options.get("two_stems")
    if two:
        parts.append(f"{two} + without {two}")
    elif stems:
        parts.append(", ".join(str(s).replace("_", " ") for s in stems))
    else:
        parts.append("all stems")
    parts.append(str(options.get("format", "wav")).upper())
    if job.engine == "lalalai" and options.get("preview"):
        parts.append("60 s preview")
    return " · ".join(parts)
