"""The one interface both engines implement.

``Engine.separate(input, options, on_progress, cancel, destination, hooks)``
turns one audio file into a ``SeparationResult`` (its ``stems`` are
``{stem_name: path}``). The CLI, the Python API, the worker and the tests all
go through it, so an engine is swappable without touching them: what only one
engine can tell (runner notices, provider task ids) travels through
``RunHooks`` while the run goes on and comes back in the result, never through
an attribute read after the call.

Contract every engine keeps:

* progress is reported as whole percents, never decreasing, ending at 100 on
  success;
* ``cancel`` is checked often; a cancelled run raises ``CancelledError``;
* stems appear in ``destination`` only when the whole run succeeded (they are
  staged next to it and moved in at the end), so a failure leaves nothing
  half-written;
* every failure is a ``SoundForgeError`` whose message a person can act on.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from soundforge.errors import CancelledError, InvalidOptionError

OutputFormat = Literal["wav", "flac", "mp3"]
WavDepth = Literal["16", "24", "float"]
OUTPUT_FORMATS: tuple[str, ...] = ("wav", "flac", "mp3")
WAV_DEPTHS: tuple[str, ...] = ("16", "24", "float")

ProgressCallback = Callable[[int], None]
# Inside an engine, before ``MonotonicProgress`` makes whole percents of it: a
# fraction from 0 to 1 and its stage ("reading", "separating", "writing").
Progress = Callable[[float, str], None]
# Asked between units of work (segments); True means stop now.
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class SeparationOptions:
    """What to separate and how to write it. Engine-specific fields are ignored
    by the engine they do not concern."""

    model: str = "htdemucs"
    # None = every stem the model/provider gives for this request.
    stems: tuple[str, ...] | None = None
    # Karaoke mode: write ``stem`` and ``no_stem`` only.
    two_stems: str | None = None
    format: OutputFormat = "wav"
    wav_depth: WavDepth = "16"
    mp3_bitrate: int = 320
    # Output sample rate; None = the input's rate (stems line up with the original).
    sample_rate: int | None = None

    # local (Demucs)
    device: str | None = None  # None = settings / auto
    precision: str | None = None  # fp32 | bf16 | fp16; None = settings (fp32)
    batch: int | None = None  # segments per forward call; None = chosen from free memory
    shifts: int = 1
    overlap: float = 0.25
    segment: float | None = None
    seed: int | None = None  # fixes the random shifts, for reproducible runs

    # lalalai
    preview: bool = False
    splitter: str | None = None
    extraction_level: str | None = None
    enhanced_processing: bool | None = None
    noise_cancelling: bool | None = None

    def with_changes(self, **changes: Any) -> SeparationOptions:
        return replace(self, **changes)


# The bitrates an MP3 encoder can write at 32-48 kHz (MPEG-1 Layer III). Any
# other value would be rounded by the encoder behind the user's back.
MP3_BITRATES: tuple[int, ...] = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
MAX_SHIFTS = 20
# Demucs's transformer models refuse more than they were trained on (7.8 s, checked
# per model by the local engine); this bounds the others, whose memory grows with it.
MAX_SEGMENT_SECONDS = 120.0
MAX_SEED = 2**32 - 1  # what NumPy's and Python's generators take without folding


# Segments per model call: far more than any GPU's memory holds for a full model.
MAX_BATCH = 256


def _between(low: float, high: float, *, high_open: bool = False) -> Callable[[float], bool]:
    if high_open:
        return lambda value: low <= value < high
    return lambda value: low <= value <= high


# Every numeric field of SeparationOptions → (accepts the value, what to send instead).
# A test checks that each numeric field has a rule, so a field added later cannot
# slip through unchecked.
NUMERIC_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "mp3_bitrate": (
        lambda value: value in MP3_BITRATES,
        f"one of {', '.join(map(str, MP3_BITRATES))} (kbit/s)",
    ),
    "sample_rate": (_between(8000, 192000), "between 8000 and 192000 Hz"),
    "shifts": (_between(0, MAX_SHIFTS), f"a whole number from 0 to {MAX_SHIFTS}"),
    "overlap": (_between(0, 1, high_open=True), "at least 0 and less than 1"),
    "segment": (
        lambda value: 0 < value <= MAX_SEGMENT_SECONDS,
        f"a positive number of seconds, at most {MAX_SEGMENT_SECONDS:g}",
    ),
    "seed": (_between(0, MAX_SEED), f"a whole number from 0 to {MAX_SEED}"),
    "batch": (_between(1, MAX_BATCH), f"a whole number of segments from 1 to {MAX_BATCH}"),
}


def numeric_fields() -> dict[str, type]:
    """SeparationOptions' number fields (bools excluded) → int or float."""
    found: dict[str, type] = {}
    for item in fields(SeparationOptions):
        kind = str(item.type)
        if "bool" in kind:
            continue
        if "int" in kind:
            found[item.name] = int
        elif "float" in kind:
            found[item.name] = float
    return found


def check_numbers(options: SeparationOptions) -> None:
    """Refuse a non-finite or out-of-range number before any work or row exists.

    Infinity and NaN arrive from JSON (Python's parser accepts them) and from
    forms ("inf"); they must never reach a stored job or an encoder."""
    for name, kind in numeric_fields().items():
        value: object = getattr(options, name)
        if value is None:
            continue
        accepts, wanted = NUMERIC_RULES[name]
        # Named as the API and as the command line spell it.
        refused = InvalidOptionError(
            f"Option {name!r} (--{name.replace('_', '-')}) is {value!r}; it must be {wanted}."
        )
        if isinstance(value, bool) or not isinstance(value, kind | int):
            raise refused
        number = float(value) if isinstance(value, float) else int(value)  # type: ignore[call-overload]
        if not math.isfinite(number) or not accepts(number):
            raise refused


def validate_common(options: SeparationOptions) -> None:
    """Checks every engine shares: output format and depth, and every number."""
    if options.format not in OUTPUT_FORMATS:
        raise InvalidOptionError(
            f"Unknown output format {options.format!r}: use {', '.join(OUTPUT_FORMATS)}."
        )
    if options.wav_depth not in WAV_DEPTHS:
        raise InvalidOptionError(
            f"Unknown WAV depth {options.wav_depth!r}: use {', '.join(WAV_DEPTHS)}."
        )
    check_numbers(options)


class CancelToken:
    """Set from any thread to ask a running separation to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            already = self._event.is_set()
            self._event.set()
            callbacks = list(self._callbacks)
        if not already:
            for callback in callbacks:
                callback()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as cancel was asked."""
        return self._event.wait(timeout)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when cancel is asked (at once if it already was)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError()


class MonotonicProgress:
    """Wraps a progress callback so that it only ever sees whole percents that
    go up (engines' raw progress can jitter, e.g. across bag models)."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self.percent = -1

    def __call__(self, percent: float) -> None:
        value = max(0, min(100, int(percent)))
        if value <= self.percent:
            return
        self.percent = value
        if self._callback is not None:
            self._callback(value)


@dataclass(frozen=True)
class ProviderWork:
    """What one separation holds at a cloud provider: its uploaded file and the
    tasks started on it so far. Ids only (never the key), so it is safe to store."""

    source_id: str
    task_ids: tuple[str, ...] = ()


# Told each time a run's provider work grows (after the upload, after every
# task start), or what a run's clean-up could not release at the provider.
ProviderWorkCallback = Callable[[ProviderWork], None]
# Told a sentence a person should read on the job: the engine did something
# that changes how long it takes or how it sounds (an out-of-memory retry …).
NoticeCallback = Callable[[str], None]


@dataclass(frozen=True)
class RunHooks:
    """What a caller may be told during one run, beyond progress.

    Every engine accepts every hook and calls those it has something for; a
    caller never needs to know which engine it holds. An exception raised by
    ``on_provider_work`` stops the run (it cleans up as for any error): a run
    whose work cannot be recorded must not go on being charged."""

    # Runner notices (local: out-of-memory retries with a smaller batch).
    on_notice: NoticeCallback | None = None
    # The provider's source and task ids as soon as each exists (lalalai).
    on_provider_work: ProviderWorkCallback | None = None
    # What the clean-up could not release at the provider (it was unreachable):
    # unfinished tasks not cancelled, the upload not deleted (``source_id`` "" when it was).
    on_unreleased: ProviderWorkCallback | None = None
    # The file's name where a provider shows it (lalalai's dashboard); default:
    # the input's own name.
    upload_name: str | None = None


@dataclass(frozen=True)
class SeparationResult:
    """What one successful ``Engine.separate`` made and how."""

    # stem name → its file in ``destination``.
    stems: dict[str, Path]
    # What the run used at a cloud provider (lalalai), None for a local run.
    provider_work: ProviderWork | None = None
    # Whether the run reused what an earlier run left loaded (the local
    # runner's model), so it paid no load time; None when the idea does not apply.
    reused: bool | None = None
    # Seconds per phase, named by the engine ("load", "separate", "total" …).
    timings: dict[str, float] = field(default_factory=dict)
    # Provider minutes the run cost (lalalai), None for a local run.
    minutes: float | None = None
    # Sentences for a person about the result (a silent stem and why …).
    notes: tuple[str, ...] = ()

    @property
    def provider_task_ids(self) -> tuple[str, ...]:
        return self.provider_work.task_ids if self.provider_work is not None else ()


class Engine(Protocol):
    """A separation engine (``local`` or ``lalalai``).

    Capabilities only some engines have are still methods of every engine
    (``check_quota`` of a free engine returns None), so callers never test an
    engine's class or the signature of its methods."""

    name: str

    def validate(self, options: SeparationOptions) -> SeparationOptions:
        """Check options up front (model, stems …) and return them normalised;
        raise ``InvalidOptionError`` with a helpful message otherwise."""
        ...

    def check_quota(self, options: SeparationOptions, duration: float) -> float | None:
        """Raise ``QuotaError`` when the account behind the engine cannot pay
        for separating ``duration`` seconds with ``options``; returns the cost
        in provider minutes, None for an engine that does not bill."""
        ...

    def separate(
        self,
        input_path: Path,
        options: SeparationOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        destination: Path | None = None,
        hooks: RunHooks | None = None,
    ) -> SeparationResult:
        """Separate ``input_path`` into ``destination/{stem}.{ext}``."""
        ...

    def close(self) -> None:
        """Release what the engine holds (processes, connections)."""
        ...
