"""Our stem names ↔ the LALAL.AI API's, and the tasks a request turns into.

The API offers two ways to extract instruments:

* ``split/multistem`` extracts any subset of six stems in one task and returns
  each of them plus one "back" track, ``no_multistem``: the mix without all of
  them (we keep it as ``rest``);
* ``split/stem_separator`` extracts one stem and returns it plus ``no_<stem>``
  (the mix without it, kept as ``no_<our name>``). ``synthesizer``, ``strings``
  and ``wind`` exist only here (and only with the phoenix splitter), and backing
  vocals only here too, through ``multivocal: "lead_back"`` on ``vocals``.

So a request becomes at most one multistem task plus one stem_separator task
per remaining stem; all of them run at the same time on the provider's side.
Each output name comes from exactly one task: when two tasks would both return
the same back track (``no_vocals`` from a vocals task and from a lead/back task)
only the first is downloaded. ``build_presets`` writes a planned task's
request body.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from soundforge.engines.base import SeparationOptions
from soundforge.errors import InvalidOptionError
from soundforge.stems import LALALAI_STEMS, REST, complement

TaskKind = Literal["stem_separator", "multistem"]

# Our name → the API's name, for stems a plain stem/multistem task extracts.
API_NAMES: dict[str, str] = {
    "vocals": "vocals",
    "drums": "drum",
    "bass": "bass",
    "electric_guitar": "electric_guitar",
    "acoustic_guitar": "acoustic_guitar",
    "piano": "piano",
    "synth": "synthesizer",
    "strings": "strings",
    "wind": "wind",
}
# What split/multistem accepts in ``stem_list`` (at most six, all of them).
MULTISTEM_STEMS: frozenset[str] = frozenset(
    {"vocals", "drums", "bass", "electric_guitar", "acoustic_guitar", "piano"}
)
# The API documents these as available "only [with the] phoenix splitter".
PHOENIX_ONLY_STEMS: frozenset[str] = frozenset({"synth", "strings", "wind"})

BACKING_VOCALS = "backing_vocals"
LEAD_VOCALS = "lead_vocals"
MULTIVOCAL_LEAD_BACK = "lead_back"
# Tracks of a ``multivocal: lead_back`` vocals task, as the API labels them.
LEAD_LABEL = "vocals@0"
BACKING_LABEL = "vocals@1"
LEAD_BACK_OUTPUTS: dict[str, str] = {
    BACKING_LABEL: BACKING_VOCALS,
    LEAD_LABEL: LEAD_VOCALS,
    "no_vocals": complement("vocals"),  # instrumental
    "mix_no_lead": complement(LEAD_VOCALS),  # instrumental + backing vocals
}
MULTISTEM_BACK_LABEL = "no_multistem"

# The API's own names, for users who type them (``--stems drum,synthesizer``).
ALIASES: dict[str, str] = {
    "drum": "drums",
    "synthesizer": "synth",
    "synths": "synth",
    "backing": BACKING_VOCALS,
    "backing_vocal": BACKING_VOCALS,
}


@dataclass(frozen=True)
class PlannedTask:
    """One provider task and what we keep of its tracks."""

    kind: TaskKind
    # API stem names sent (``stem`` or ``stem_list``).
    api_stems: tuple[str, ...]
    # Our stem names this task was planned for (what the user asked for).
    wanted: tuple[str, ...]
    # API track label → our output name, for every track we keep.
    outputs: dict[str, str] = field(default_factory=dict)
    multivocal: str | None = None

    @property
    def stem_count(self) -> int:
        """Stems the provider charges this task for."""
        return len(self.api_stems)

    @property
    def description(self) -> str:
        return ", ".join(self.wanted)


def normalise_stem(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(key, key)


def check_stems(stems: Iterable[str]) -> tuple[str, ...]:
    """Normalise and validate stem names; keeps the order, drops duplicates."""
    out: list[str] = []
    for raw in stems:
        stem = normalise_stem(raw)
        if stem not in LALALAI_STEMS:
            raise InvalidOptionError(
                f"LALAL.AI has no stem {raw!r}; its stems are {', '.join(LALALAI_STEMS)}."
            )
        if stem not in out:
            out.append(stem)
    if not out:
        raise InvalidOptionError("No stems asked for: name at least one stem.")
    return tuple(out)


def _single_task(stem: str, outputs: dict[str, str]) -> PlannedTask:
    if stem == BACKING_VOCALS:
        return PlannedTask(
            kind="stem_separator",
            api_stems=("vocals",),
            wanted=(stem,),
            outputs=outputs,
            multivocal=MULTIVOCAL_LEAD_BACK,
        )
    api = API_NAMES[stem]
    return PlannedTask(kind="stem_separator", api_stems=(api,), wanted=(stem,), outputs=outputs)


def _separator_outputs(stem: str) -> dict[str, str]:
    if stem == BACKING_VOCALS:
        return dict(LEAD_BACK_OUTPUTS)
    api = API_NAMES[stem]
    return {api: stem, complement(api): complement(stem)}


def plan_tasks(stems: tuple[str, ...] | None, two_stems: str | None = None) -> list[PlannedTask]:
    """The provider tasks for a request.

    * ``two_stems=X``: one stem_separator task, keeping ``X`` and ``no_X`` only;
    * otherwise (``None`` = all ten stems): the multistem-capable stems in one
      multistem task when there are two or more of them (a single one goes to
      stem_separator, whose ``no_<stem>`` is more useful than ``rest``), and
      every other stem in a stem_separator task of its own.
    """
    if two_stems is not None:
        if stems is not None:
            raise InvalidOptionError("Use either --stems or --two-stems, not both.")
        (stem,) = check_stems([two_stems])
        if stem == BACKING_VOCALS:
            raise InvalidOptionError(
                "--two-stems backing_vocals is not possible: LALAL.AI returns no track "
                "'everything but the backing vocals'. Use --stems backing_vocals instead."
            )
        api = API_NAMES[stem]
        return [_single_task(stem, {api: stem, complement(api): complement(stem)})]

    wanted = check_stems(stems) if stems is not None else LALALAI_STEMS
    multi = [stem for stem in wanted if stem in MULTISTEM_STEMS]
    single = [stem for stem in wanted if stem not in MULTISTEM_STEMS]
    tasks: list[PlannedTask] = []
    if len(multi) >= 2:
        outputs = {API_NAMES[stem]: stem for stem in multi}
        outputs[MULTISTEM_BACK_LABEL] = REST
        tasks.append(
            PlannedTask(
                kind="multistem",
                api_stems=tuple(API_NAMES[stem] for stem in multi),
                wanted=tuple(multi),
                outputs=outputs,
            )
        )
    else:
        single = multi + single
    # Backing vocals last, so that a plain vocals task's no_vocals is the one kept.
    single.sort(key=lambda stem: stem == BACKING_VOCALS)
    taken = {name for task in tasks for name in task.outputs.values()}
    for stem in single:
        outputs = {
            label: name for label, name in _separator_outputs(stem).items() if name not in taken
        }
        taken.update(outputs.values())
        tasks.append(_single_task(stem, outputs))
    return tasks


def required_outputs(task: PlannedTask) -> set[str]:
    """Output names that must be in the task's result (the stems asked for).
    Back tracks are kept when present; backing vocals may be absent, which the
    API documents as "no backing vocals found in the audio"."""
    return {name for name in task.outputs.values() if name in task.wanted} - {BACKING_VOCALS}


def planned_outputs(tasks: list[PlannedTask]) -> list[str]:
    return [name for task in tasks for name in task.outputs.values()]


def total_stems(tasks: list[PlannedTask]) -> int:
    return sum(task.stem_count for task in tasks)


# Lossless, compact result tracks: we re-encode to the requested format anyway.
RESULT_FORMAT = "flac"


def build_presets(task: PlannedTask, options: SeparationOptions) -> dict[str, Any]:
    """The ``presets`` body of a split request. Options left at None are not
    sent, so the provider applies its own defaults (splitter ``auto``,
    extraction level ``deep_extraction``)."""
    presets: dict[str, Any] = {"encoder_format": RESULT_FORMAT}
    if options.splitter is not None:
        presets["splitter"] = options.splitter
    if options.extraction_level is not None:
        presets["extraction_level"] = options.extraction_level
    if task.kind == "multistem":
        presets["stem_list"] = list(task.api_stems)
        return presets
    presets["stem"] = task.api_stems[0]
    if task.multivocal is not None:
        presets["multivocal"] = task.multivocal
    if options.enhanced_processing is not None:
        # Only stem_separator tasks carry this flag (see the /check/ example
        # presets in the provider's spec); multistem has no such field.
        presets["enhanced_processing_enabled"] = options.enhanced_processing
    return presets
