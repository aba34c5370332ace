"""A Demucs model (or bag) as a ``StemStream``: ``apply_model``'s arithmetic, streamed.

Outputs are overlap-added with the reference's triangular weights (raised to
``transition_power``) into a running sum per pass, and divided by the running
sum of weights, in the order the reference adds them. The shift passes and a
bag's members run in lockstep rather than one after another, and are combined
with the reference's arithmetic: shift average, then bag weights and totals.

A region of a pass is final once no later segment can touch it; it is then
moved to the pass's ``ready`` list and its accumulator dropped, so each buffer
spans about one segment. The network itself is evaluated by a
``SegmentBackend`` (``backends.py``: device, batching and precision live there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from soundforge.engines.local.streaming.feed import MixFeed
from soundforge.engines.local.streaming.plan import Job, Pass, Plan
from soundforge.errors import EngineError

if TYPE_CHECKING:
    from soundforge.engines.local.backends import SegmentBackend


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
            parts = [p.ready.pop(n) for p in plan.passes if p.member is member]
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
        pass_.ready.push(final[..., cut_lo:cut_hi])
        pass_.ready_end = mix_lo + cut_hi
    pass_.done_to = upto
    # Drop what is final: the buffer only ever spans about one segment.
    keep = upto - pass_.acc_start
    pass_.acc = pass_.acc[..., keep:].clone()
    pass_.wsum = pass_.wsum[keep:].clone()
    pass_.acc_start = upto



class DemucsStream:
    """Every pass of a plan, evaluated segment by segment in lockstep."""

    def __init__(
        self,
        plan: Plan,
        feed: MixFeed,
        backend: SegmentBackend,
        sources: tuple[str, ...],
        mean: torch.Tensor,
        std: torch.Tensor,
    ) -> None:
        self.plan = plan
        self.feed = feed
        self.backend = backend
        self.sources = sources
        self.units = plan.total_segments
        self._combiner = Combiner(plan, mean, std)

    @property
    def finished(self) -> bool:
        return all(p.finished for p in self.plan.passes)

    def _next_jobs(self) -> list[tuple[Pass, int]]:
        batch = self.backend.batch
        if batch > 1:
            # Each pass's next `batch` segments: the backend stacks those of one
            # network into one call, and the passes stay within `batch` segments
            # of each other, so the buffers stay bounded.
            return [
                (p, k)
                for p in self.plan.passes
                for k in range(p.next_segment, min(p.segments, p.next_segment + batch))
            ]
        # One segment: the one whose window starts earliest, across passes. This
        # keeps every pass within about one segment of the others (lockstep).
        best: tuple[int, int, Pass] | None = None
        for order, p in enumerate(self.plan.passes):
            if p.finished:
                continue
            start = p.segment_bounds(p.next_segment)[2]
            if best is None or (start, order) < (best[0], best[1]):
                best = (start, order, p)
        return [] if best is None else [(best[2], best[2].next_segment)]

    def advance(self) -> int:
        jobs = []
        for p, k in self._next_jobs():
            _, chunk, window_start, valid = p.segment_bounds(k)
            jobs.append(Job(p, k, chunk, self.feed.window(window_start, valid)))
        outputs = self.backend.run(jobs)
        for job, out in zip(jobs, outputs, strict=True):
            p = job.pass_
            offset = job.segment * p.member.stride
            # Weighted where the output is (as apply_model does), then one copy home.
            contribution = (p.member.window[: job.chunk] * out).to("cpu")
            _accumulate(p, offset, contribution, p.member.window_host[: job.chunk])
            p.next_segment = job.segment + 1
            final_to = p.length if p.finished else p.next_segment * p.member.stride
            _finalise(p, final_to, self.feed.length)
        return len(jobs)

    def ready(self) -> int:
        return self._combiner.available()

    def take(self, end: int) -> torch.Tensor:
        return self._combiner.take(end)

    def needs_from(self) -> int:
        starts = [
            max(0, p.segment_bounds(p.next_segment)[2])
            for p in self.plan.passes
            if not p.finished
        ]
        return min(starts, default=self.feed.length)
