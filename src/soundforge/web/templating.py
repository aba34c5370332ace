"""Jinja2 templates: the environment, filters and what every page sees."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates

from soundforge.db import ProcessingJob
from soundforge.export.mixing import PRESETS, available_presets
from soundforge.web.player_view import player_view
from soundforge.web.security import csrf_token

PACKAGE_DIR = Path(__file__).parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"


@cache
def _static_version(name: str) -> str:
    # Content hash in the URL: browsers may cache static files for long, and a
    # new release still reaches them at once.
    path = STATIC_DIR / name
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


def static_url(name: str) -> str:
    return f"/static/{name}?v={_static_version(name)}"


def format_duration(seconds: float | None) -> str:
    if not seconds or seconds < 0:
        return "0:00"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_size(size: int | None) -> str:
    value = float(size or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def format_when(moment: datetime | None) -> str:
    """'just now', '5 min ago', '3 h ago', else the date."""
    if moment is None:
        return ""
    delta = (datetime.now(UTC) - moment).total_seconds()
    if delta < 60:
        return "just now"
    if delta < 3600:
        return f"{int(delta // 60)} min ago"
    if delta < 86400:
        return f"{int(delta // 3600)} h ago"
    return moment.strftime("%d %b %Y")


def stem_label(name: str) -> str:
    if name.startswith("no_"):
        return "without " + name[3:].replace("_", " ")
    return name.replace("_", " ")


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


def mix_presets(stem_names: list[str]) -> list[str]:
    """The presets a separation with these stems can render."""
    return available_presets(stem_names)


def _context(request: Request) -> dict[str, Any]:
    return {
        "csrf_token": csrf_token(request),
        "current_path": request.url.path,
        "player_decode_limit_minutes": request.app.state.settings.player_decode_limit_minutes,
    }


def create_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(("html", "xml", "svg")),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals["static"] = static_url
    env.filters["duration"] = format_duration
    env.filters["filesize"] = format_size
    env.filters["when"] = format_when
    env.filters["stem_label"] = stem_label
    env.globals["mix_presets"] = mix_presets
    env.globals["preset_labels"] = PRESETS
    env.globals["player_view"] = player_view
    # The icon macros are needed in every template and include.
    icons = env.get_template("_icons.html").module
    env.globals["icon"] = icons.icon  # type: ignore[attr-defined]
    env.globals["logo"] = icons.logo  # type: ignore[attr-defined]
    return Jinja2Templates(env=env, context_processors=[_context])
