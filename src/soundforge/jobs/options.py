"""What a job asks for: the engine plus ``SeparationOptions``, and how it is stored.

A request is built from the user's settings (engine, Demucs model, device,
output format, LALAL.AI preview) with the caller's overrides on top, then
validated by the engine itself. The stored form is a plain JSON dict.

``options_key`` fingerprints everything that changes the *output* (not the
device, nor the other engine's fields): equal keys on equal audio mean equal
stems, which is how finished work is reused and a double click is recognised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

# pydantic reads TypedDicts from typing_extensions on Python < 3.12 (its own dependency).
from typing_extensions import TypedDict

from soundforge.db.models import ENGINES, UserSettings
from soundforge.engines.base import SeparationOptions
from soundforge.engines.local.ensemble.spec import is_ensemble, parse_ensemble
from soundforge.errors import InvalidOptionError
from soundforge.stems import parse_stem_list

OPTION_FIELDS: dict[str, dataclasses.Field[Any]] = {
    f.name: f for f in dataclasses.fields(SeparationOptions)
}
LOCAL_ONLY = frozenset(
    {"model", "device", "precision", "batch", "shifts", "overlap", "segment", "seed"}
)
LALALAI_ONLY = frozenset(
    {"preview", "splitter", "extraction_level", "enhanced_processing", "noise_cancelling"}
)
# Fields that never change the stems' content (batching only changes rounding).
NOT_IN_KEY = frozenset({"device", "batch"})

def _blank_is(meaning: Any) -> BeforeValidator:
    """A form's empty field (or one of spaces) means ``meaning``; other text is
    stripped before pydantic reads it."""
    return BeforeValidator(
        lambda raw: (raw.strip() or meaning) if isinstance(raw, str) else raw
    )


def _not_a_yes_no(raw: Any) -> Any:
    # pydantic reads True as 1; a tick box sent for a number is a mistake.
    if isinstance(raw, bool):
        raise ValueError("a yes/no value is not a number")
    return raw


def _stem_names(raw: Any) -> Any:
    return parse_stem_list(raw) if isinstance(raw, str) else raw


def _distinct_or_none(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Each name once, blanks dropped; no names at all means "every stem" (None)."""
    distinct = tuple(dict.fromkeys(name for name in names or () if name))
    return distinct or None


# Pydantic's own coercion of form and JSON values (numbers from text, yes/no
# words, stripping); what is ours is only what a blank field means.
_Word = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True)]
_Name = Annotated[_Word | None, AfterValidator(lambda text: text or None)]
_Int = Annotated[int | None, BeforeValidator(_not_a_yes_no), _blank_is(None)]
_Float = Annotated[float | None, _blank_is(None)]
_YesNo = Annotated[bool | None, _blank_is(False)]
_Stems = Annotated[
    tuple[_Word, ...] | None, AfterValidator(_distinct_or_none), BeforeValidator(_stem_names)
]


class _GivenOptions(TypedDict, total=False):
    """``SeparationOptions``' fields as a form or a JSON body sends them (a blank
    number means "the default")."""

    __pydantic_config__ = ConfigDict(coerce_numbers_to_str=True)  # type: ignore[misc]

    model: _Word | None
    stems: _Stems
    two_stems: _Name
    format: _Word | None
    wav_depth: _Word | None
    mp3_bitrate: _Int
    sample_rate: _Int
    device: _Name
    precision: _Name
    batch: _Int
    shifts: _Int
    overlap: _Float
    segment: _Float
    seed: _Int
    preview: _YesNo
    splitter: _Name
    extraction_level: _Name
    enhanced_processing: _YesNo
    noise_cancelling: _YesNo


_GIVEN_OPTIONS = TypeAdapter(_GivenOptions)


def _coerce(given: Mapping[str, Any]) -> dict[str, Any]:
    """Values from a form or JSON (strings, lists) → the dataclass fields' types."""
    try:
        return dict(_GIVEN_OPTIONS.validate_python(given))
    except ValidationError as exc:
        name = str(exc.errors()[0]["loc"][0])
        raise InvalidOptionError(
            f"Option {name!r} has an invalid value: {given[name]!r}."
        ) from None


def build_request(
    user_settings: UserSettings | None,
    overrides: Mapping[str, Any] | SeparationOptions | None = None,
    engine: str | None = None,
) -> tuple[str, SeparationOptions]:
    """The engine name and options for a new job: user settings, then overrides.

    ``overrides`` may be a mapping with any ``SeparationOptions`` field (values
    as a form or JSON sends them) plus ``engine``, or a ``SeparationOptions``
    (every field then counts as given). Unknown keys are refused, so a typo in
    an API call is an error instead of a silently ignored wish.
    """
    given: dict[str, Any]
    if isinstance(overrides, SeparationOptions):
        given = options_to_dict(overrides)
    else:
        given = dict(overrides or {})
    engine = engine or given.pop("engine", None) or (
        user_settings.engine if user_settings else "local"
    )
    given.pop("engine", None)
    if engine not in ENGINES:
        raise InvalidOptionError(f"Unknown engine {engine!r}: use {' or '.join(ENGINES)}.")
    unknown = sorted(set(given) - set(OPTION_FIELDS))
    if unknown:
        raise InvalidOptionError(
            f"Unknown option(s): {', '.join(unknown)}. "
            f"Known options: {', '.join(OPTION_FIELDS)}."
        )
    values: dict[str, Any] = {}
    if user_settings is not None:
        values["model"] = user_settings.demucs_model
        values["format"] = user_settings.output_format
        if user_settings.device and user_settings.device != "auto":
            values["device"] = user_settings.device
        if engine == "lalalai":
            values["preview"] = bool(user_settings.lalalai_preview)
    values.update(_coerce(given))
    if not values.get("model"):
        values.pop("model", None)
    for name in ("format", "wav_depth", "mp3_bitrate", "shifts", "overlap"):
        if values.get(name) is None:
            values.pop(name, None)
    return engine, SeparationOptions(**values)


def options_to_dict(options: SeparationOptions) -> dict[str, Any]:
    data = dataclasses.asdict(options)
    if data.get("stems") is not None:
        data["stems"] = list(data["stems"])
    return data


def options_from_dict(data: Mapping[str, Any]) -> SeparationOptions:
    """The stored dict → options (fields unknown to this version are ignored)."""
    values = {name: value for name, value in data.items() if name in OPTION_FIELDS}
    if values.get("stems") is not None:
        values["stems"] = tuple(values["stems"])
    return SeparationOptions(**values)


# The job row's model column holds this many characters (db/models.py).
JOB_MODEL_LENGTH = 64


def job_model(engine: str, options: SeparationOptions) -> str:
    """What the job row shows as its model: the local model, preset or ensemble
    (shortened to fit the column; the options keep the whole definition), or
    the LALAL.AI splitter."""
    if engine == "local":
        name = options.model
        if len(name) > JOB_MODEL_LENGTH:
            return name[: JOB_MODEL_LENGTH - 1] + "…"
        return name
    return options.splitter or "auto"


def model_key(model: str) -> str:
    """The model as the key sees it: an ensemble (or preset) by its canonical
    definition, so a preset whose members change is new work, and the same
    ensemble spelt two ways (``a+b``, ``a:1+b``) is the same work."""
    if is_ensemble(model):
        return "ensemble:" + parse_ensemble(model).definition
    return model


def options_key(engine: str, options: SeparationOptions) -> str:
    other = LALALAI_ONLY if engine == "local" else LOCAL_ONLY
    data = {
        name: value
        for name, value in options_to_dict(options).items()
        if name not in other and name not in NOT_IN_KEY
    }
    if data.get("stems") is not None:
        data["stems"] = sorted(data["stems"])
    if "model" in data:
        data["model"] = model_key(data["model"])
    canonical = json.dumps({"engine": engine, "options": data}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
