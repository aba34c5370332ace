"""ZIP entries named by the user's file-name template (Settings → Exports)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from soundforge.config import Settings
from soundforge.db import ProcessingJob, Track
from soundforge.errors import NotFoundError
from soundforge.export.naming import FilenameTemplate, date_value
from soundforge.library.files import resolve_upload


def templated_zip_entries(
    template: str, track: Track, jobs: Sequence[ProcessingJob], settings: Settings
) -> list[tuple[str, Path]]:
    """``(name in the ZIP, file)`` for the stems of ``jobs``; a template that gives two
    files one name is refused (422) rather than one of them being dropped."""
    rows: list[dict[str, str]] = []
    files: list[Path] = []
    for job in jobs:
        for stem in job.stems:
            try:
                path = resolve_upload(settings, stem.file_path)
            except NotFoundError:
                continue  # a file removed behind our back: export what is there
            rows.append({
                "track": track.title, "stem": stem.stem_type, "ext": stem.format,
                "model": job.model, "engine": job.engine, "date": date_value(job.created_at),
            })
            files.append(path)
    names = FilenameTemplate.parse(template).render_all(rows)
    return list(zip(names, files, strict=True))
