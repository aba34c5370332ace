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
    Aligner,
    SpectralPick,
    StemCombiner,
    WeightedAverage,
)
from soundforge.engines.local.ensemble.spec import MAX_SPEC, MIN_SPEC, EnsembleSpec
from soundforge.engines.local.streaming import StemStream


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
        self.aligner = Aligner(list(self.sources))
        self.pulled = 0  # mix position up to which member estimates were combined
        self.flushed = False
        self.out: list[dict[str, torch.Tensor]] = []
        self.available = 0  # combined samples of every stem not yet taken
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
            combined = {
                stem: self.combiners[stem].push([parts[i][k] for i, k in route])
                for stem, route in self.routes.items()
            }
            self._queue(combined, ready - self.pulled)
            self.pulled = ready
        if all(m.stream.finished for m in self.members) and not self.flushed:
            if self.pulled != self.length:
                raise RuntimeError("internal: the members finished short of the track")
            self._queue({stem: c.flush() for stem, c in self.combiners.items()}, 0)
            self.flushed = True

    def _queue(self, combined: dict[str, torch.Tensor], raw_samples: int) -> None:
        # The aligner lines the stems up; the raw mix is the driver's business,
        # so it is stood in for by a zero-channel block of the same length.
        aligned = self.aligner.push(combined, torch.zeros(0, raw_samples))
        if aligned is not None:
            blocks, _ = aligned
            self.out.append(blocks)
            self.available += next(iter(blocks.values())).shape[-1]

    def ready(self) -> int:
        return self.taken + self.available

    def take(self, end: int) -> torch.Tensor:
        need = end - self.taken
        parts: list[torch.Tensor] = []
        while need:
            blocks = self.out[0]
            n = next(iter(blocks.values())).shape[-1]
            if n <= need:
                parts.append(torch.stack([blocks[s] for s in self.sources]))
                self.out.pop(0)
                need -= n
            else:
                parts.append(torch.stack([blocks[s][..., :need] for s in self.sources]))
                self.out[0] = {s: b[..., need:] for s, b in blocks.items()}
                need = 0
        self.available -= end - self.taken
        self.taken = end
        return torch.cat(parts, dim=-1) if len(parts) != 1 else parts[0]

    def needs_from(self) -> int:
        return min(
            (m.stream.needs_from() for m in self.members if not m.stream.finished),
            default=self.length,
        )
