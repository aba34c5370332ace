"""The Separate Stems form: its pre-filled values and reading what was sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from soundforge.db import User
from soundforge.db.accounts import get_user_settings
from soundforge.jobs.engines import lalalai_key_for
from soundforge.web import catalog
from soundforge.web.serialize import job_summary

_TRUE = {"1", "true", "on", "yes"}


def separate_form_context(session: Session, user: User, settings: Any) -> dict[str, Any]:
    prefs = get_user_settings(session, user)
    model = prefs.demucs_model if prefs.demucs_model in catalog.MODELS else catalog.DEFAULT_MODEL
    return {
        "form_values": {
            "engine": prefs.engine,
            "model": model,
            "format": prefs.output_format,
            "preview": bool(prefs.lalalai_preview),
            "stems": None,
        },
        "models": catalog.MODELS,
        "model_stems": catalog.model_stems(),
        "lalalai_stems": list(catalog.LALALAI_STEMS),
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
    if engine == "lalalai":
        options["preview"] = str(form.get("preview") or "").lower() in _TRUE
    else:
        model = str(form.get("model") or "").strip()
        if model:
            options["model"] = model
        spec = catalog.MODELS.get(model)
        # Every stem of the model ticked is "all stems": the same request as
        # the default, so it is recognised as the same work (reuse, double click).
        if spec is not None and stems and sorted(set(stems)) == sorted(spec.stems):
            stems = []
    if stems:
        options["stems"] = stems
    force = str(form.get("force") or "").lower() in _TRUE
    return options, force
