"""Which segments a Demucs model (or bag) evaluates, as ``apply_model`` chooses them.

The track is split into the same segments (``segment_length``, ``stride``),
each evaluated with the same context (``TensorChunk.padded``: a window of
``valid_length`` samples centred on the chunk, zeros outside the track). The
shift trick's random offsets are drawn up front in the order the reference
draws them (the random draws each model call makes are replayed too, so a
seeded run matches a seeded reference run); a bag's members each get their
passes, and pruned members (whose stems nobody asked for) get none.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from soundforge.engines.local.streaming.queue import SampleQueue
from soundforge.errors import EngineError, InvalidOptionError


def bag_members(model: Any) -> tuple[list[Any], list[list[float]], bool]:
    """The networks of ``model``, their per-source weights, and whether it is a
    bag (a bag is averaged with weights; a bare model is used as it is)."""
    from demucs.apply import BagOfModels

    if isinstance(model, BagOfModels):
        return list(model.models), [list(map(float, w)) for w in model.weights], True
    return [model], [[1.0] * len(model.sources)], False


def consumes_random(member: Any) -> int | None:
    """How an HTDemucs forward call draws from ``random``: its transformer picks
    a sinusoidal-embedding shift with ``random.randrange(n)`` every call. None if
    the network draws nothing."""
    transformer = getattr(member, "crosstransformer", None)
    if transformer is not None and getattr(transformer, "emb", None) == "sin":
        return int(transformer.sin_random_shift) + 1
    return None


@dataclass
class Member:
    index: int
    model: Any
    weights: list[float]
    segment_length: int
    stride: int
    window: torch.Tensor  # overlap-add weight, on the compute device
    user_segment: float | None
    active: bool
    # The same weights on the host, where the running weight sums live: copied
    # once here instead of from the device every segment.
    window_host: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.window_host = self.window.to("cpu")

    def valid_length(self, length: int) -> int:
        """The window the network is evaluated on (``apply_model``'s rule)."""
        from demucs.htdemucs import HTDemucs

        if isinstance(self.model, HTDemucs) and self.user_segment is not None:
            return int(self.user_segment * self.model.samplerate)
        if hasattr(self.model, "valid_length"):
            return int(self.model.valid_length(length))
        return length


def overlap_weight(
    segment_length: int, transition_power: float, device: torch.device
) -> torch.Tensor:
    # Built exactly as apply_model builds it (integer ramps, divided by the max).
    weight = torch.cat(
        [
            torch.arange(1, segment_length // 2 + 1, device=device),
            torch.arange(segment_length - segment_length // 2, 0, -1, device=device),
        ]
    )
    return (weight / weight.max()) ** transition_power


@dataclass
class Pass:
    """One evaluation of one member over the (shifted) track."""

    member: Member
    shift_index: int
    start: int  # mix position of this pass's position 0 (≤ 0 with shifts)
    length: int  # positions in this pass
    next_segment: int = 0
    done_to: int = 0  # pass positions already handed to the combiner
    acc: torch.Tensor | None = None
    wsum: torch.Tensor | None = None
    acc_start: int = 0
    ready: SampleQueue = field(default_factory=SampleQueue)  # final blocks, in order
    ready_end: int = 0  # mix position up to which `ready` reaches

    @property
    def segments(self) -> int:
        return len(range(0, self.length, self.member.stride))

    @property
    def finished(self) -> bool:
        return self.next_segment >= self.segments

    def segment_bounds(self, k: int) -> tuple[int, int, int, int]:
        """(pass offset, chunk length, mix start of the window, window length)."""
        offset = k * self.member.stride
        chunk = min(self.length - offset, self.member.segment_length)
        valid = self.member.valid_length(chunk)
        return offset, chunk, self.start + offset - (valid - chunk) // 2, valid


@dataclass
class Job:
    pass_: Pass
    segment: int
    chunk: int
    window: torch.Tensor  # (channels, valid) normalised input with its context

    @property
    def member(self) -> Member:
        return self.pass_.member




@dataclass
class Plan:
    members: list[Member]
    passes: list[Pass]
    shifts: int
    is_bag: bool
    totals: list[float]
    needed: tuple[int, ...]  # source indices whose estimates are used
    pruned: bool  # some members are skipped

    @property
    def active_members(self) -> list[Member]:
        return [m for m in self.members if m.active]

    @property
    def total_segments(self) -> int:
        return sum(p.segments for p in self.passes)


def make_plan(
    model: Any,
    length: int,
    needed_sources: Sequence[str],
    *,
    shifts: int,
    overlap: float,
    segment: float | None,
    device: torch.device,
    transition_power: float = 1.0,
) -> Plan:
    """Segments, shift offsets and bag members for one track of ``length`` samples.

    Draws from ``random`` exactly as ``apply_model`` would over the whole bag,
    including members that are then skipped, so the members that do run see
    the offsets the reference gives them.
    """
    if transition_power < 1:
        raise EngineError("transition_power < 1 is not supported (apply_model refuses it).")
    from demucs.htdemucs import HTDemucs

    networks, weights, is_bag = bag_members(model)
    sources = list(model.sources)
    needed = tuple(sources.index(s) for s in needed_sources)
    members: list[Member] = []
    for index, (net, net_weights) in enumerate(zip(networks, weights, strict=True)):
        if segment is not None and isinstance(net, HTDemucs) and segment > net.segment:
            # The transformer was trained on this length; the official CLI refuses too.
            raise InvalidOptionError(
                f"--segment {segment:g} is longer than this model allows "
                f"({float(net.segment):.2f} s); use a shorter segment or none."
            )
        seg = segment if segment is not None else net.segment
        segment_length = int(net.samplerate * seg)
        stride = int((1 - overlap) * segment_length)
        if stride <= 0:
            raise EngineError("The overlap leaves no stride between segments.")
        active = not is_bag or any(net_weights[k] != 0 for k in needed)
        members.append(
            Member(
                index,
                net,
                net_weights,
                segment_length,
                stride,
                overlap_weight(segment_length, transition_power, device),
                segment,
                active,
            )
        )
    if not any(m.active for m in members):
        raise EngineError("No model of the bag contributes to the requested stems.")
    passes: list[Pass] = []
    max_shift = int(0.5 * model.samplerate)
    for member in members:
        if not shifts:
            if member.active:
                passes.append(Pass(member, 0, 0, length))
            continue
        draws = consumes_random(member.model)
        for shift_index in range(shifts):
            offset = random.randint(0, max_shift)
            pass_ = Pass(member, shift_index, offset - max_shift, length + max_shift - offset)
            if draws is not None:
                # The reference calls the network once per segment of this pass
                # before drawing the next offset; each call draws once.
                for _ in range(pass_.segments):
                    random.randrange(draws)
            if member.active:
                passes.append(pass_)
    totals = [0.0] * len(sources)
    for member in members:
        for k, w in enumerate(member.weights):
            totals[k] += w
    pruned = not all(m.active for m in members)
    return Plan(members, passes, shifts, is_bag, totals, needed, pruned)

