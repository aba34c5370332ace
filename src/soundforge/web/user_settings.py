"""Reading and changing a user's separation defaults (page form and REST API)."""

from __future__ import annotations

from typing import Any

from soundforge.config import Settings
from soundforge.db import UserSettings
from soundforge.db.accounts import set_lalalai_key
from soundforge.engines.local.device import parse_device
from soundforge.errors import InvalidOptionError
from soundforge.export.naming import FilenameTemplate
from soundforge.web import catalog

EDITABLE = ("engine", "demucs_model", "device", "output_format", "lalalai_preview",
            "lalalai_api_key", "filename_template")


def settings_dict(prefs: UserSettings) -> dict[str, Any]:
    """The user's settings as the API shows them: the key masked, never in clear."""
    return {
        "engine": prefs.engine,
        "demucs_model": prefs.demucs_model,
        "device": prefs.device or "auto",
        "output_format": prefs.output_format,
        "lalalai_preview": bool(prefs.lalalai_preview),
        "lalalai_key_set": prefs.has_lalalai_key,
        "lalalai_key_masked": mask_key(prefs.lalalai_key_last4) if prefs.has_lalalai_key else None,
        "filename_template": prefs.filename_template,
    }


def mask_key(last4: str | None) -> str:
    return "••••••••" + (last4 or "")


def apply_settings_update(settings: Settings, prefs: UserSettings, changes: dict[str, Any]) -> None:
    """Validate every change first, then apply them all (all or nothing)."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidOptionError(
            f"Unknown setting(s): {', '.join(unknown)}. Settings: {', '.join(EDITABLE)}."
        )
    if "engine" in changes and changes["engine"] not in catalog.ENGINE_LABELS:
        raise InvalidOptionError(
            f"Unknown engine {changes['engine']!r}: use {' or '.join(catalog.ENGINE_LABELS)}."
        )
    if "demucs_model" in changes and changes["demucs_model"] not in catalog.picker_names():
        raise InvalidOptionError(
            f"Unknown model {changes['demucs_model']!r}. "
            f"Choose a model or an ensemble preset: {', '.join(catalog.picker_names())}."
        )
    if "device" in changes:
        check_device_choice(changes["device"])
    if "output_format" in changes and changes["output_format"] not in catalog.OUTPUT_FORMATS:
        raise InvalidOptionError(
            f"Unknown output format {changes['output_format']!r}: "
            f"use {', '.join(catalog.OUTPUT_FORMATS)}."
        )
    if "lalalai_preview" in changes and not isinstance(changes["lalalai_preview"], bool):
        raise InvalidOptionError("lalalai_preview must be true or false.")
    key = changes.get("lalalai_api_key")
    if key is not None and (not isinstance(key, str) or len(key.strip()) > 200):
        raise InvalidOptionError("The LALAL.AI key must be text of at most 200 characters.")

    template = changes.get("filename_template")
    if template is not None:
        if not isinstance(template, str):
            raise InvalidOptionError("filename_template must be text, or null for the default.")
        if template.strip():
            changes["filename_template"] = check_zip_template(template)
        else:
            changes["filename_template"] = None

    for name in ("engine", "demucs_model", "output_format", "lalalai_preview",
                 "filename_template"):
        if name in changes:
            setattr(prefs, name, changes[name])
    if "device" in changes:
        prefs.device = None if changes["device"] == "auto" else changes["device"]
    if "lalalai_api_key" in changes:
        set_lalalai_key(settings, prefs, changes["lalalai_api_key"])


def check_device_choice(choice: object) -> None:
    """A device the form offers: valid, and present on this server's machine."""
    if not isinstance(choice, str):
        raise InvalidOptionError("The device must be text, e.g. auto, cpu or cuda.")
    parse_device(choice)  # the syntax, with its own message
    offered = [value for value, _ in catalog.device_choices()]
    if choice.strip().lower() not in offered:
        raise InvalidOptionError(
            f"Device {choice!r} is not available on this server: choose {', '.join(offered)}."
        )


def check_zip_template(text: str) -> str:
    """A template for ZIP entries: it must tell a separation's stems apart."""
    template = FilenameTemplate.parse(text)
    if "stem" not in template.variables:
        raise InvalidOptionError(
            f"The file-name template {template.text!r} has no {{stem}}: every stem of a "
            "separation would get the same name. Add {stem}."
        )
    return template.text
