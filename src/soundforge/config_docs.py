"""The settings tables of README.md and docs/pipeline.md, written from the settings
classes so that the docs cannot drift from the code.

The tables sit between ``[[[cog`` markers in the Markdown; ``cog -r README.md
docs/pipeline.md`` rewrites them, and ``cog --check`` (run by ``make lint`` and
``make test``, so by CI) fails when a setting was added, renamed or changed
without the docs following. Every field needs a ``description``: it is the
"meaning" column. ``json_schema_extra={"shown_default": "…"}`` words a default
that is not a plain value (one computed at start, say).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

# Read straight from the environment, before any settings object exists (the
# logging of the CLI and of the runner sub-process): documented here instead.
ENVIRONMENT_ONLY: dict[str, tuple[str, str]] = {
    "SOUNDFORGE_LOG_LEVEL": ("`WARNING`", "Log level of the CLI and the runner."),
    # Read by engines/local/roformer/files.py, in the CLI and the runner alike.
    "SOUNDFORGE_MODEL_CACHE": (
        "`~/.cache/soundforge/models`",
        "Where `soundforge models download` puts RoFormer files (`$XDG_CACHE_HOME` is "
        "honoured); separations read them from there unless SOUNDFORGE_MODEL_REPO is set.",
    ),
    "SOUNDFORGE_MODEL_MIRROR": (
        "unset",
        "Base URL of a mirror holding the RoFormer files under their published names, "
        "used instead of the published URLs (the recorded checksums still apply).",
    ),
}


def variable_name(settings: type[BaseSettings], name: str, field: FieldInfo) -> str:
    """The environment variable a person sets: the first alias, else prefix + name."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = next(choice for choice in alias.choices if isinstance(choice, str))
    if isinstance(alias, str):
        return alias.upper()
    return f"{settings.model_config.get('env_prefix', '')}{name}".upper()


def shown_default(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])
    default = field.default
    if default is None:
        return "unset"
    if default == "":
        return "empty"
    if isinstance(default, Path):
        return f"`./{default}`"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def settings_table(
    *classes: type[BaseSettings],
    only: Iterable[str] | None = None,
    environment_only: bool = False,
    header: bool = True,
) -> str:
    """A Markdown table of the fields of ``classes`` (``only``: these field names),
    plus, with ``environment_only``, the variables read outside any settings class.
    ``header=False``: the rows only, to go on with a table begun by another call."""
    wanted = set(only) if only is not None else None
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"] if header else []
    for settings in classes:
        for name, field in settings.model_fields.items():
            if wanted is not None and name not in wanted:
                continue
            if not field.description:
                raise ValueError(
                    f"{settings.__name__}.{name} has no description: the docs' table of "
                    "settings is written from it. Add one (what it does, its unit)."
                )
            meaning = " ".join(field.description.split()).replace("|", "\\|")
            variable = variable_name(settings, name, field)
            rows.append(f"| `{variable}` | {shown_default(field)} | {meaning} |")
    if environment_only:
        for variable, (default, meaning) in ENVIRONMENT_ONLY.items():
            rows.append(f"| `{variable}` | {default} | {meaning} |")
    return "\n".join(rows) + "\n"
