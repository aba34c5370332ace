"""The Separate Stems form: its pre-filled values and reading what was sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from soundforge.db import ProcessingJob, User
from soundforge.db.accounts import get_user_settings
from soundforge.jobs.engines import lalalai_key_for
from soundforge.web import catalog
from soundforge.web.player_view import stem_sort_key
from soundforge.web.templating import job_summary

_TRUE = {"1", "true", "on", "yes"}


def separate_form_context(session: Session, user: User, settings: Any) -> dict[str, Any]:
    prefs = get_user_settings(session, user)
    offered = catalog.picker_names()
    model = prefs.demucs_model if prefs.demucs_model in offered else catalog.DEFAULT_MODEL
    return {
        "form_values": {
            "engine": prefs.engine,
            "model": model,
            "format": prefs.output_format,
            "preview": bool(prefs.lalalai_preview),
            "stems": None,
            "two_stems": None,
            "splitter": "",
            "extraction_level": "",
        },
        "model_states": catalog.model_states(settings.model_repo),
        "splitters": catalog.SPLITTER_NAMES,
        "extraction_levels": catalog.EXTRACTION_LEVEL_NAMES,
        "full_track_fields": full_track_fields,
        "models": catalog.MODELS,
        "ensembles": catalog.ensembles(),
        # In the player's musical order: vocals first (the two-stem default).
        "model_stems": {name: sorted(stems, key=stem_sort_key)
                        for name, stems in catalog.model_stems().items()},
        "lalalai_stems": sorted(catalog.LALALAI_STEMS, key=stem_sort_key),
        "formats": catalog.OUTPUT_FORMATS,
        "format_labels": catalog.FORMAT_LABELS,
        "engine_labels": catalog.ENGINE_LABELS,
        "comparison": catalog.comparison_rows(),
        "has_lalalai_key": lalalai_key_for(settings, prefs) is not None,
        "job_summary": job_summary,
    }


def options_from_form(form: Any) -> tuple[dict[str, Any], bool]:
    """Form fields → (options for ``create_separation_job``, force).

    Only fields this form has are read; the engine's own validation then
    refuses an unknown engine, model, stem or format with a clear message.
    """
    engine = str(form.get("engine") or "").strip() or None
    options: dict[str, Any] = {}
    if engine:
        options["engine"] = engine
    fmt = str(form.get("format") or "").strip()
    if fmt:
        options["format"] = fmt
    stems = [str(s) for s in form.getlist("stems") if str(s).strip()]
    # "Two stems": one stem and everything else (karaoke), instead of a list.
    two = str(form.get("two_stems") or "").strip()
    if str(form.get("split_mode") or "") == "two" and two:
        options["two_stems"] = two
        stems = []
    if engine == "lalalai":
        options["preview"] = str(form.get("preview") or "").lower() in _TRUE
        # Left empty: the provider's default (splitter auto, deep extraction).
        for name in ("splitter", "extraction_level"):
            value = str(form.get(name) or "").strip()
            if value:
                options[name] = value
    else:
        model = str(form.get("model") or "").strip()
        if model:
            options["model"] = model
        given = catalog.model_stems().get(model)
        # Every stem of the model ticked is "all stems": the same request as
        # the default, so it is recognised as the same work (reuse, double click).
        if given is not None and stems and sorted(set(stems)) == sorted(given):
            stems = []
    if stems:
        options["stems"] = stems
    force = str(form.get("force") or "").lower() in _TRUE
    return options, force


def full_track_fields(job: ProcessingJob) -> list[tuple[str, str]]:
    """The Separate form's fields that ask for a finished LALAL.AI preview's
    separation again, on the whole track (same stems, splitter, level, format)."""
    options = job.options or {}
    fields: list[tuple[str, str]] = [("engine", job.engine)]
    if options.get("format"):
        fields.append(("format", str(options["format"])))
    if options.get("two_stems"):
        fields += [("split_mode", "two"), ("two_stems", str(options["two_stems"]))]
    fields += [("stems", str(stem)) for stem in options.get("stems") or []]
    for name in ("splitter", "extraction_level"):
        if options.get(name):
            fields.append((name, str(options[name])))
    return fields  # no "preview" field: the full track
