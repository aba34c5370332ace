"""A RoFormer network's estimates for one track, produced chunk by chunk.

This is the arithmetic of the inference packages' ``demix_track``
(``bs_roformer.utils`` / ``mel_band_roformer.utils``, the same function in
both), reproduced on a stream instead of the whole track:

* chunks of ``C = inference.chunk_size`` samples every ``step = C // num_overlap``;
* the track reflect-padded by ``border = C - step`` at both ends when it is
  longer than ``2 · border`` (no padding otherwise);
* a chunk shorter than ``C`` (the last ones) reflect-padded to ``C`` when longer
  than ``C // 2 + 1``, zero-padded otherwise;
* each chunk's output weighted by a window with linear fades of ``C // 10``
  samples, without the fade-in on the first chunk and without the fade-out on
  chunks that reach the end; the weighted outputs and the weights summed in
  chunk order, divided, NaN (no weight) set to 0, the padding cut off.

A region is final once no later chunk starts before it; it is then handed
out (``take``) and its accumulators dropped, so memory depends on the chunk
size, never on the track's length. For a model that outputs one target (a
vocal model), the other source is the mix minus the target, as the package's
CLI writes its "instrumental".
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import torch

from soundforge.engines.local.roformer.loader import RoformerModel
from soundforge.errors import OutOfMemoryError


class MixSource(Protocol):
    """What the stream reads: the un-normalised mix at the model's rate."""

    length: int

    def raw(self, start: int, end: int) -> torch.Tensor: ...


def fade_window(size: int, fade: int) -> torch.Tensor:
    """The package's ``get_windowing_array`` (on the CPU)."""
    window = torch.ones(size)
    window[-fade:] *= torch.linspace(1, 0, fade)
    window[:fade] *= torch.linspace(0, 1, fade)
    return window


class RoformerStream:
    """``StemStream`` for a RoFormer model (see streaming/protocol.py)."""

    def __init__(
        self,
        model: RoformerModel,
        feed: MixSource,
        device: torch.device,
        precision: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        batch: int | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.feed = feed
        self.sources = tuple(model.sources)
        self.device = device
        self.precision = precision or contextlib.nullcontext
        # None: one chunk per call, except on CUDA, where the first call is
        # measured and the batch sized from the free memory (as for Demucs).
        self.auto_batch = batch is None and device.type == "cuda"
        self.batch = max(1, batch or 1)
        self.notice = notice or (lambda _text: None)
        length = feed.length
        self.length = length
        self.chunk = model.chunk_size
        self.step = self.chunk // model.num_overlap
        self.fade = self.chunk // 10
        border = self.chunk - self.step
        self.offset = border if length > 2 * border and border > 0 else 0
        self.padded_length = length + 2 * self.offset
        self.units = math.ceil(self.padded_length / self.step)  # chunk starts < padded end
        self._window = fade_window(self.chunk, self.fade)
        self._outputs = 1 if model.target is not None else len(self.sources)
        self._done = 0  # chunks run
        self._base = 0  # padded position of the first kept accumulator sample
        self._result = torch.zeros(self._outputs, model.audio_channels, 0)
        self._weight = torch.zeros(self._outputs, model.audio_channels, 0)
        self._taken = 0  # mix position up to which estimates were handed out

    # ------------------------------------------------------------------ protocol

    @property
    def finished(self) -> bool:
        return self._done >= self.units

    def ready(self) -> int:
        if self.finished:
            return self.length
        return min(self.length, max(0, self._done * self.step - self.offset))

    def needs_from(self) -> int:
        if self.finished:
            return self.length if self.model.target is None else self._taken
        start = self._done * self.step
        end = min(start + self.chunk, self.padded_length)
        lowest = min(self._mix_indices(start, end).min().item(), self.length)
        if self.model.target is not None:
            lowest = min(lowest, self._taken)  # the complement reads the mix
        return int(lowest)

    def advance(self) -> int:
        """Run the next chunk(s) (``batch`` at a time); returns how many."""
        todo = min(self.batch, self.units - self._done)
        starts = [(self._done + k) * self.step for k in range(todo)]
        parts = [self._part(start) for start in starts]
        outputs = self._run([part for part, _ in parts])
        for start, (_, length), out in zip(starts, parts, outputs, strict=True):
            self._accumulate(start, length, out)
        self._done += todo
        return todo

    def take(self, end: int) -> torch.Tensor:
        """Final estimates for mix positions [taken, end): (sources, channels, n)."""
        begin = self._taken
        lo, hi = begin + self.offset - self._base, end + self.offset - self._base
        estimate = self._result[..., lo:hi] / self._weight[..., lo:hi]
        estimate = torch.nan_to_num(estimate, nan=0.0)
        keep = end + self.offset - self._base
        self._result = self._result[..., keep:]
        self._weight = self._weight[..., keep:]
        self._base += keep
        self._taken = end
        if self.model.target is None:
            return estimate
        target = estimate[0]
        rest = self.feed.raw(begin, end) - target
        pair = [target, rest] if self.model.target == 0 else [rest, target]
        return torch.stack(pair)

    # ------------------------------------------------------------------ chunks

    def _mix_indices(self, start: int, end: int) -> torch.Tensor:
        """Mix positions of padded positions [start, end) (reflection at the ends)."""
        index = torch.arange(start - self.offset, end - self.offset)
        index = torch.where(index < 0, -index, index)
        return torch.where(index >= self.length, 2 * (self.length - 1) - index, index)

    def _part(self, start: int) -> tuple[torch.Tensor, int]:
        end = min(start + self.chunk, self.padded_length)
        index = self._mix_indices(start, end)
        lo, hi = int(index.min()), int(index.max()) + 1
        mix = self.feed.raw(lo, hi)
        part = mix[:, index - lo] if self.offset else mix
        length = part.shape[-1]
        if length < self.chunk:
            if length > self.chunk // 2 + 1:
                part = torch.nn.functional.pad(part, (0, self.chunk - length), mode="reflect")
            else:
                part = torch.nn.functional.pad(part, (0, self.chunk - length, 0, 0))
        return part, length

    def _run(self, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """The network's output for each chunk; out of device memory, the
        chunks are run in halves (and the batch stays smaller from then on)."""
        from soundforge.engines.local.backends import is_out_of_memory

        measuring = self.auto_batch and len(parts) == 1
        try:
            if measuring:
                torch.cuda.reset_peak_memory_stats(self.device)
                before = torch.cuda.memory_allocated(self.device)
            batch = torch.stack(parts).to(self.device)
            with torch.no_grad(), self.precision(), warnings.catch_warnings():
                # The package's attention uses torch's deprecated sdp_kernel():
                # its warning (every call) is not the user's to act on.
                warnings.filterwarnings("ignore", message=".*sdp_kernel.*is deprecated")
                out = self.model.net(batch)
            if measuring:
                self._size_batch(torch.cuda.max_memory_allocated(self.device) - before)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            if len(parts) == 1:
                raise OutOfMemoryError(
                    f"Out of {self.device} memory with one {self.chunk}-sample chunk of "
                    f"{self.model.name}: free the GPU of other programs, try --precision "
                    "bf16 (or fp16), or --device cpu."
                ) from None
            half = len(parts) // 2
            self.batch, self.auto_batch = half, False
            self.notice(
                f"Out of {self.device} memory with {len(parts)} chunks per call: "
                f"retrying with {half}."
            )
            return self._run(parts[:half]) + self._run(parts[half:])
        if out.dim() == 3:  # one stem: the network drops the stem axis
            out = out.unsqueeze(1)
        return list(out.float().cpu())

    def _size_batch(self, per_chunk: int) -> None:
        """After one single-chunk call on CUDA: as many chunks per call as fit."""
        from soundforge.engines.local.backends import MAX_AUTO_BATCH, MEMORY_HEADROOM

        self.auto_batch = False
        free, _ = torch.cuda.mem_get_info(self.device)
        fits = int(free * MEMORY_HEADROOM // max(1, per_chunk)) + 1
        self.batch = max(1, min(MAX_AUTO_BATCH, fits))

    def _accumulate(self, start: int, length: int, out: torch.Tensor) -> None:
        window = self._window.clone()
        if start == 0:
            window[: self.fade] = 1
        elif start + self.chunk >= self.padded_length:
            window[-self.fade :] = 1
        end = start + length
        have = self._base + self._result.shape[-1]
        if end > have:
            grow = end - have
            shape = (*self._result.shape[:-1], grow)
            self._result = torch.cat([self._result, torch.zeros(shape)], dim=-1)
            self._weight = torch.cat([self._weight, torch.zeros(shape)], dim=-1)
        lo, hi = start - self._base, end - self._base
        self._result[..., lo:hi] += out[..., :length] * window[:length]
        self._weight[..., lo:hi] += window[:length]
