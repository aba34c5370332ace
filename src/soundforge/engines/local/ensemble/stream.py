"""An ensemble as one ``StemStream``: its members' streams over the same feed,
combined stem by stem as their estimates become final.

The members advance in lockstep (the one that lags goes next), so at most
about one member window of final estimates waits for the others. A spectral
combiner holds back the samples its later frames still overlap; ``ready``
only reports what every stem has combined, so the driver never sees that
delay, and the end of the track flushes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from soundforge.engines.local.ensemble.combine import (
    SpectralPick,
    StemCombiner,
    WeightedAverage,
)
from soundforge.engines.local.ensemble.spec import MAX_SPEC, MIN_SPEC, EnsembleSpec
from soundforge.engines.local.streaming import SampleQueue, StemStream
from soundforge.errors import EngineError


@dataclass(frozen=True)
class MemberStream:
    model: str  # the catalogue name, for messages
    stream: StemStream


def stem_combiner(combiner: str, weights: list[float], channels: int) -> StemCombiner:
    if len(weights) == 1:
        return WeightedAverage(weights)  # one member: its estimate as it is
    if combiner in (MAX_SPEC, MIN_SPEC):
        return SpectralPick(combiner == MAX_SPEC, channels)
    return WeightedAverage(weights)


class EnsembleStream:
    """The ensemble's ``stems`` (in that order) from its ``members``' streams."""

    def __init__(
        self,
        spec: EnsembleSpec,
        stems: Sequence[str],
        members: Sequence[MemberStream],
        length: int,
        channels: int,
    ) -> None:
        self.sources = tuple(stems)
        self.members = list(members)
        self.units = sum(member.stream.units for member in self.members)
        self.length = length
        by_model = {member.model: index for index, member in enumerate(self.members)}
        # stem → [(member index, the member's source index)], and its combiner.
        self.routes: dict[str, list[tuple[int, int]]] = {}
        self.combiners: dict[str, StemCombiner] = {}
        for stem in self.sources:
            givers = [m for m in spec.givers(stem) if m.model in by_model]
            self.routes[stem] = [
                (by_model[m.model], self.members[by_model[m.model]].stream.sources.index(stem))
                for m in givers
            ]
            self.combiners[stem] = stem_combiner(
                spec.combiner, [m.weight for m in givers], channels
            )
        # Each stem's combined samples, not yet taken; a spectral stem lags a
        # stem that one member gives alone, so they fill up at different rates.
        self.queues = {stem: SampleQueue() for stem in self.sources}
        self.pulled = 0  # mix position up to which member estimates were combined
        self.flushed = False
        self.taken = 0

    @property
    def finished(self) -> bool:
        return self.flushed

    def advance(self) -> int:
        pending = [m.stream for m in self.members if not m.stream.finished]
        done = 0
        if pending:
            laggard = min(pending, key=lambda stream: stream.ready())
            done = laggard.advance()
        self._pull()
        return done

    def _pull(self) -> None:
        ready = min(member.stream.ready() for member in self.members)
        if ready > self.pulled:
            parts = [member.stream.take(ready) for member in self.members]
            for stem, route in self.routes.items():
                self.queues[stem].push(self.combiners[stem].push([parts[i][k] for i, k in route]))
            self.pulled = ready
        if all(m.stream.finished for m in self.members) and not self.flushed:
            if self.pulled != self.length:
                raise EngineError(
                    f"internal: the ensemble's models stopped at {self.pulled} of "
                    f"{self.length} samples"
                )
            for stem, combiner in self.combiners.items():
                self.queues[stem].push(combiner.flush())
            self.flushed = True

    def ready(self) -> int:
        return self.taken + min(queue.size for queue in self.queues.values())

    def take(self, end: int) -> torch.Tensor:
        count = end - self.taken
        self.taken = end
        return torch.stack([self.queues[stem].pop(count) for stem in self.sources])

    def needs_from(self) -> int:
        return min(
            (m.stream.needs_from() for m in self.members if not m.stream.finished),
            default=self.length,
        )
