"""The streaming core: models as streams of final estimates over one shared mix.

Every model family plugs in as a ``StemStream``: it reads windows of the
decoded mix from a ``MixFeed``, evaluates its network a unit (segment, chunk)
at a time, and reports how far its estimates are final. ``run_streams``
advances one or several streams in lockstep over the same feed (one decoding
pass, however many models), combines their final regions and hands them to
the writers, then lets the feed drop the input nobody needs any more. Memory
therefore depends on the models' windows, never on the track's length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from soundforge.engines.local.streaming.feed import MixFeed
from soundforge.errors import CancelledError, EngineError

# The combined estimates (sources, channels, n) of one region from each stream's.
Combine = Callable[[list[torch.Tensor]], torch.Tensor]
# (combined estimates, raw mix of the same region) → None
Emit = Callable[[torch.Tensor, torch.Tensor], None]


class StemStream(Protocol):
    """One model's source estimates for one track, produced incrementally."""

    sources: tuple[str, ...]  # the model's output order
    units: int  # total work units (segments, chunks), for progress

    @property
    def finished(self) -> bool: ...

    def advance(self) -> int:
        """Run the next unit(s) of work; returns how many were done."""
        ...

    def ready(self) -> int:
        """Estimates are final for mix positions before this."""
        ...

    def take(self, end: int) -> torch.Tensor:
        """Final estimates from where the last ``take`` stopped up to ``end``:
        ``(sources, channels, n)``, float32 on the CPU, de-normalised."""
        ...

    def needs_from(self) -> int:
        """The earliest mix position a later ``advance`` will read."""
        ...


def only(estimates: list[torch.Tensor]) -> torch.Tensor:
    """The ``Combine`` of a single model: its own estimates."""
    (single,) = estimates
    return single


def run_streams(
    streams: Sequence[StemStream],
    feed: MixFeed,
    combine: Combine,
    emit: Emit,
    on_unit: Callable[[int, int], None],
    should_stop: Callable[[], bool],
) -> None:
    """Advance ``streams`` until the whole track is separated, emitting each
    consecutive final region once every stream has it."""
    length = feed.length
    total = sum(stream.units for stream in streams)
    done_units = 0
    emitted = 0
    while True:
        pending = [stream for stream in streams if not stream.finished]
        if not pending:
            break
        if should_stop():
            raise CancelledError()
        # The stream that lags furthest goes next: the others' finished
        # estimates wait in memory until it catches up, so keep that short.
        laggard = min(pending, key=lambda stream: stream.ready())
        done_units += laggard.advance()
        on_unit(done_units, total)
        ready = min(stream.ready() for stream in streams)
        if ready > emitted:
            emit(combine([stream.take(ready) for stream in streams]), feed.raw(emitted, ready))
            emitted = ready
        keep_from = min([emitted] + [stream.needs_from() for stream in pending])
        feed.release(keep_from)
    if emitted != length:
        raise EngineError(f"internal: separated {emitted} of {length} samples")
    feed.finish()
