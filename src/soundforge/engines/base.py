"""The one interface both engines implement.

``Engine.separate(input, options, on_progress, cancel, destination)`` turns one
audio file into ``{stem_name: path}``. The CLI, the Python API, the worker and
the tests all go through it, so an engine is swappable without touching them.

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


@dataclass
class SeparationResult:
    stems: dict[str, Path]
    details: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """A separation engine (``local`` or ``lalalai``)."""

    name: str

    def validate(self, options: SeparationOptions) -> SeparationOptions:
        """Check options up front (model, stems …) and return them normalised;
        raise ``InvalidOptionError`` with a helpful message otherwise."""
        ...

    def separate(
        self,
        input_path: Path,
        options: SeparationOptions,
        on_progress: ProgressCallback | None,
        cancel: CancelToken | None,
        destination: Path,
    ) -> dict[str, Path]:
        """Separate ``input_path`` into ``destination/{stem}.{ext}``."""
        ...

    def close(self) -> None:
        """Release what the engine holds (processes, connections)."""
        ...
