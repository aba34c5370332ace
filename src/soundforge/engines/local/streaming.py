"""Streaming separation: decode → separate → write in a stream of segments.

This reproduces the arithmetic of ``demucs.apply.apply_model`` (the official
package's reference) without ever holding the whole track or a whole stem in
memory:

* the track is split into the same segments (``segment_length``, ``stride``),
  each evaluated with the same context (``TensorChunk.padded``: a window of
  ``valid_length`` samples centred on the chunk, zeros outside the track) and
  centre-trimmed the same way;
* outputs are overlap-added with the same triangular weights (raised to
  ``transition_power``) into a running sum, and divided by the running sum of
  weights, in the same order as the reference adds them;
* the shift trick (``shifts`` > 0) runs its passes in lockstep rather than one
  after another; their random offsets are drawn up front in the order the
  reference draws them (the random draws that each model call makes are
  replayed too, so a seeded run matches a seeded reference run);
* a bag's members run in lockstep too, weighted and divided by the weight
  totals as the reference does.

A region of the output is final once no later segment of any pass can touch
it; it is then combined, de-normalised and handed to the stem writers, and the
input and accumulators behind it are dropped. Memory therefore depends on the
segment length, never on the track's length.

The model evaluation itself is delegated to a ``SegmentBackend``
(``backends.py``: the device, batching and precision live there), so the same
scheduling runs the official modules on any device or the faster CPU path.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from soundforge.engines.base import ShouldStop
from soundforge.engines.local.backends import SegmentBackend
from soundforge.errors import CancelledError, EngineError, InvalidOptionError

# --------------------------------------------------------------------------- stats


@dataclass
class MixStats:
    """What the first decoding pass learns: the normalisation and the length."""

    mean: float
    std: float
    length: int  # samples at the model's rate, as the second pass will yield them
    source_frames: int  # frames at the file's own rate

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        # The official code keeps mean and std as float32 tensors; using the same
        # dtype keeps (x - mean) / std and y * std + mean bit-compatible with it.
        return torch.tensor(self.mean, dtype=torch.float32), torch.tensor(
            self.std, dtype=torch.float32
        )


class RunningStats:
    """Mean and unbiased standard deviation of the channel-averaged mix, merged
    block by block (Chan et al.) in float64 so one pass is enough and an hour of
    audio loses no precision."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, block: np.ndarray) -> None:
        ref = block.mean(axis=0, dtype=np.float32).astype(np.float64)
        n = ref.size
        if n == 0:
            return
        block_mean = float(ref.mean())
        block_m2 = float(((ref - block_mean) ** 2).sum())
        total = self.count + n
        delta = block_mean - self.mean
        self.mean += delta * n / total
        self.m2 += block_m2 + delta * delta * self.count * n / total
        self.count = total

    def result(self) -> tuple[float, float]:
        std = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0
        return self.mean, guard_std(std)


def guard_std(std: float) -> float:
    """The official API divides by ``std + 1e-8``; pure digital silence (or a
    non-finite value) would blow the input up, so it is left unscaled."""
    if not math.isfinite(std) or std < 1e-8:
        return 1.0
    return std + 1e-8


# --------------------------------------------------------------------------- plan


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
    ready: list[torch.Tensor] = field(default_factory=list)  # final blocks, in order
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


# --------------------------------------------------------------------------- input


class MixFeed:
    """The decoded mix as a sliding window: blocks arrive from the decoder,
    windows are read with zeros outside the track (the reference pads the same
    way), and what no pass needs any more is dropped."""

    def __init__(
        self,
        blocks: Iterator[np.ndarray],
        length: int,
        channels: int,
        mean: torch.Tensor,
        std: torch.Tensor,
    ) -> None:
        self._blocks = blocks
        self.length = length
        self.channels = channels
        self._mean = mean
        self._std = std
        self._raw: list[torch.Tensor] = []  # un-normalised, for mix − X
        self._norm: list[torch.Tensor] = []
        self.start = 0  # mix position of the first kept sample
        self.end = 0  # mix position after the last decoded sample
        self._exhausted = False

    def ensure(self, end: int) -> None:
        end = min(end, self.length)
        while self.end < end:
            try:
                block = next(self._blocks)
            except StopIteration:
                self._exhausted = True
                break
            raw = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
            self._raw.append(raw)
            self._norm.append((raw - self._mean) / self._std)
            self.end += raw.shape[-1]
        if self.end < end:
            raise EngineError(
                f"The audio decoded to {self.end} samples the second time but "
                f"{self.length} the first: the file changed while it was being read."
            )

    def finish(self) -> None:
        """Check the decoder ends where the first pass said it would."""
        if not self._exhausted:
            for block in self._blocks:
                self.end += block.shape[-1]
        if self.end != self.length:
            raise EngineError(
                f"The audio decoded to {self.end} samples the second time but "
                f"{self.length} the first: the file changed while it was being read."
            )

    def _slice(self, parts: list[torch.Tensor], a: int, b: int) -> torch.Tensor:
        """Samples [a, b) (within the track and the kept range)."""
        out = []
        pos = self.start
        for part in parts:
            n = part.shape[-1]
            lo, hi = max(a, pos), min(b, pos + n)
            if lo < hi:
                out.append(part[:, lo - pos : hi - pos])
            pos += n
            if pos >= b:
                break
        if len(out) == 1:
            return out[0]
        return torch.cat(out, dim=1) if out else torch.zeros(self.channels, 0)

    def window(self, start: int, length: int) -> torch.Tensor:
        """Normalised samples [start, start + length), zero outside the track."""
        end = start + length
        self.ensure(end)
        lo, hi = max(start, 0), min(end, self.length)
        if lo < self.start:
            raise EngineError("internal: a window reaches behind the released input")
        if lo >= hi:
            return torch.zeros(self.channels, length)
        inside = self._slice(self._norm, lo, hi)
        if lo == start and hi == end:
            return inside.contiguous()
        return torch.nn.functional.pad(inside, (lo - start, end - hi))

    def raw(self, start: int, end: int) -> torch.Tensor:
        self.ensure(end)
        return self._slice(self._raw, start, end)

    def release(self, before: int) -> None:
        """Forget samples before ``before``."""
        while self._raw and self.start + self._raw[0].shape[-1] <= before:
            n = self._raw[0].shape[-1]
            self._raw.pop(0)
            self._norm.pop(0)
            self.start += n


# --------------------------------------------------------------------------- core


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


class Combiner:
    """Turns the passes' final blocks into de-normalised source estimates, with
    the reference's arithmetic: shift average, then bag weights and totals."""

    def __init__(self, plan: Plan, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.plan = plan
        self.mean = mean
        self.std = std
        self.done = 0  # mix position up to which estimates were produced

    def available(self) -> int:
        return min(p.ready_end for p in self.plan.passes)

    def take(self, end: int) -> torch.Tensor:
        """Estimates for [done, end): (sources, channels, n), de-normalised."""
        plan = self.plan
        n = end - self.done
        estimates: torch.Tensor | float = 0.0
        for member in plan.active_members:
            # Shift passes add up in the order the reference runs them.
            parts = [_pop(p, n) for p in plan.passes if p.member is member]
            out = parts[0]
            for part in parts[1:]:
                out += part
            if plan.shifts:
                out /= plan.shifts
            if plan.is_bag:
                for k, weight in enumerate(member.weights):
                    out[k] *= weight
                estimates = out if isinstance(estimates, float) else estimates.add_(out)
            else:
                estimates = out
        assert isinstance(estimates, torch.Tensor)
        if plan.is_bag:
            for k in range(estimates.shape[0]):
                estimates[k] /= plan.totals[k]
        self.done = end
        return estimates * self.std + self.mean


def _pop(pass_: Pass, n: int) -> torch.Tensor:
    """The next ``n`` final samples of a pass (as a new tensor the caller may modify)."""
    parts = []
    need = n
    while need:
        block = pass_.ready[0]
        if block.shape[-1] <= need:
            parts.append(block)
            pass_.ready.pop(0)
            need -= block.shape[-1]
        else:
            parts.append(block[..., :need])
            pass_.ready[0] = block[..., need:]
            need = 0
    out = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0].clone()
    return out


def _accumulate(pass_: Pass, offset: int, contribution: torch.Tensor, weight: torch.Tensor) -> None:
    """``out[..., o:o+l] += w * y; sum_weight[o:o+l] += w`` on a rolling buffer."""
    n = contribution.shape[-1]
    if pass_.acc is None:
        pass_.acc = torch.zeros(*contribution.shape[:-1], 0)
        pass_.wsum = torch.zeros(0)
        pass_.acc_start = offset
    assert pass_.wsum is not None
    have_end = pass_.acc_start + pass_.acc.shape[-1]
    if offset + n > have_end:
        grow = offset + n - have_end
        pass_.acc = torch.cat([pass_.acc, torch.zeros(*pass_.acc.shape[:-1], grow)], dim=-1)
        pass_.wsum = torch.cat([pass_.wsum, torch.zeros(grow)])
    lo = offset - pass_.acc_start
    pass_.acc[..., lo : lo + n] += contribution
    pass_.wsum[lo : lo + n] += weight


def _finalise(pass_: Pass, upto: int, total_length: int) -> None:
    """Move pass positions [done_to, upto) (those inside the track) to ``ready``."""
    if upto <= pass_.done_to or pass_.acc is None:
        return
    assert pass_.wsum is not None
    lo = pass_.done_to - pass_.acc_start
    hi = upto - pass_.acc_start
    final = pass_.acc[..., lo:hi] / pass_.wsum[lo:hi]
    if (pass_.wsum[lo:hi] <= 0).any():
        raise EngineError("internal: a region of the track received no segment")
    # Keep only what maps inside the track: the reference slices the shifted
    # output from position max_shift - offset on, for the track's length.
    mix_lo = pass_.start + pass_.done_to
    cut_lo = max(0, -mix_lo)
    cut_hi = min(final.shape[-1], total_length - mix_lo)
    if cut_lo < cut_hi:
        pass_.ready.append(final[..., cut_lo:cut_hi])
        pass_.ready_end = mix_lo + cut_hi
    pass_.done_to = upto
    # Drop what is final: the buffer only ever spans about one segment.
    keep = upto - pass_.acc_start
    pass_.acc = pass_.acc[..., keep:].clone()
    pass_.wsum = pass_.wsum[keep:].clone()
    pass_.acc_start = upto


def run_stream(
    plan: Plan,
    feed: MixFeed,
    backend: SegmentBackend,
    emit: Callable[[torch.Tensor, torch.Tensor], None],
    on_segment: Callable[[int, int], None],
    should_stop: ShouldStop,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> None:
    """Evaluate every pass in lockstep and call ``emit(estimates, raw_mix)`` with
    consecutive final regions (estimates de-normalised, (sources, channels, n))."""
    length = feed.length
    combiner = Combiner(plan, mean, std)
    done = 0
    total = plan.total_segments

    def next_jobs() -> list[tuple[Pass, int]]:
        if backend.batch > 1:
            # Each pass's next `batch` segments: the backend stacks those of one
            # network into one call, and the passes stay within `batch` segments
            # of each other, so the buffers stay bounded.
            return [
                (p, k)
                for p in plan.passes
                for k in range(p.next_segment, min(p.segments, p.next_segment + backend.batch))
            ]
        # One segment: the one whose window starts earliest, across passes. This
        # keeps every pass within about one segment of the others (lockstep).
        best: tuple[int, int, Pass] | None = None
        for order, p in enumerate(plan.passes):
            if p.finished:
                continue
            start = p.segment_bounds(p.next_segment)[2]
            if best is None or (start, order) < (best[0], best[1]):
                best = (start, order, p)
        return [] if best is None else [(best[2], best[2].next_segment)]

    while True:
        picked = next_jobs()
        if not picked:
            break
        if should_stop():
            raise CancelledError()
        jobs = []
        for p, k in picked:
            _, chunk, window_start, valid = p.segment_bounds(k)
            jobs.append(Job(p, k, chunk, feed.window(window_start, valid)))
        outputs = backend.run(jobs)
        for job, out in zip(jobs, outputs, strict=True):
            p = job.pass_
            offset = job.segment * p.member.stride
            # Weighted where the output is (as apply_model does), then one copy home.
            contribution = (p.member.window[: job.chunk] * out).to("cpu")
            _accumulate(p, offset, contribution, p.member.window_host[: job.chunk])
            p.next_segment = job.segment + 1
            final_to = p.length if p.finished else p.next_segment * p.member.stride
            _finalise(p, final_to, length)
            done += 1
            on_segment(done, total)
        ready = combiner.available()
        if ready > combiner.done:
            start = combiner.done
            emit(combiner.take(ready), feed.raw(start, ready))
        # Inputs behind every pass's next window and behind what was emitted are
        # no longer needed.
        keep_from = combiner.done
        for p in plan.passes:
            if not p.finished:
                keep_from = min(keep_from, max(0, p.segment_bounds(p.next_segment)[2]))
        feed.release(keep_from)
    if combiner.done != length:
        raise EngineError(f"internal: separated {combiner.done} of {length} samples")
    feed.finish()
