"""Which code evaluates the network on each segment, and the faster CPU path.

Profiling htdemucs (41.5 M parameters) on a 2-core AVX2 CPU, one 7.8 s
segment (about 330 GFLOP) takes ~6.8 s with two threads; its matrix products
already run within 10 % of the best sgemm rate here (``make bench-floor``
prints the whole breakdown), so what can be won is in what does not:

* the transformer's self-attention goes through ``nn.MultiheadAttention``'s
  "fast path" (``_native_multi_head_attention``), which on the CPU materialises
  the 8 × 2688 × 2688 attention matrix and runs at ~30 GFLOP/s; with that path
  switched off the same weights go through ``F.multi_head_attention_forward``
  and fused scaled-dot-product (flash) attention, as the cross-attention
  already does. Same arithmetic up to float rounding, ~10 % less CPU time.
* batching segments per forward call was measured slower (cache pressure),
  as was plain TorchScript freezing; they are not used.

The fast path is used only on the CPU and only for the network classes the
equivalence tests cover (``tests/local/test_fast*.py``); anything else runs the
official modules as they are (the reference) and the log says why. On CUDA and
MPS the official model runs on the GPU unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.streaming import (
    Job,
    Plan,
    ReferenceBackend,
    SegmentBackend,
    center_trim,
)

log = logging.getLogger(__name__)

_fastpath_lock = threading.Lock()


@contextlib.contextmanager
def fused_attention() -> Iterator[None]:
    """Route nn.MultiheadAttention through fused scaled-dot-product attention.

    The switch is process-wide in PyTorch; it is set around our own forward
    calls only and restored after, so nothing else in the process is affected
    for longer than a segment.
    """
    with _fastpath_lock:
        before = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            yield
        finally:
            torch.backends.mha.set_fastpath_enabled(before)


class FastCpuBackend:
    """The official modules and weights, with the CPU-specific choices above."""

    name = "fast-cpu"
    batch = 1

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def run(self, jobs: Sequence[Job]) -> list[torch.Tensor]:
        outputs = []
        with torch.inference_mode(), fused_attention():
            for job in jobs:
                out = job.member.model(job.window[None])[0]
                outputs.append(center_trim(out, job.chunk))
        return outputs


def fast_path_refusal(model: Any, plan: Plan, device: torch.device) -> str | None:
    """Why the fast path cannot be used here (None if it can)."""
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    if device.type != "cpu":
        return f"the fast path is for the CPU; {device.type} runs the official model"
    for member in plan.active_members:
        # Exact classes only: a subclass may change the forward the tests verified.
        if type(member.model) not in (HTDemucs, HDemucs):
            return f"{type(member.model).__name__} networks are not covered by its tests"
    return None


def choose_backend(
    model: Any, plan: Plan, device: torch.device, request: RunRequest
) -> SegmentBackend:
    reason = fast_path_refusal(model, plan, device)
    if reason is None:
        log.info("separating %s with the fast CPU path", request.model)
        return FastCpuBackend()
    # Expected on a GPU; on the CPU it means a slower run, which deserves a warning.
    level = logging.INFO if device.type != "cpu" else logging.WARNING
    log.log(level, "separating %s with the reference path: %s", request.model, reason)
    return ReferenceBackend(device)
