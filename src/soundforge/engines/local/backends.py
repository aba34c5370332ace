"""What evaluates the network on segment windows: device, batching and precision.

The streaming core (``streaming/``) decides which segments to run and adds
their outputs up; a backend runs the networks on the windows it is handed.

* ``ReferenceBackend``: the official modules, called as ``apply_model`` calls
  them, on any device. On a GPU it stacks windows of the same network into one
  forward call (``batch``), copies inputs from pinned host memory without
  blocking, and runs in the requested precision under autocast.
* ``FastCpuBackend``: the same modules on the CPU with fused scaled-dot-product
  attention (below) and, in float32, oneDNN's matmul for the linear layers
  and the attention and faster layouts for convolutions and GroupNorm
  (``onednn.py``, ``cpu_layouts.py``); in bf16, a bf16 copy of HTDemucs under
  the same kernels. Used where its equivalence tests cover the network class.

Placement follows ``apply_model``: the networks that run (the active members
of a bag) are moved to the compute device before the first segment; members
pruned from the run stay where they are. The runner keeps the model loaded
between jobs, so a second job on the same device moves nothing.

Why fused attention on the CPU: profiling htdemucs on a 2-core CPU,
``nn.MultiheadAttention``'s fast path materialises the 8 × 2688 × 2688
attention matrix at ~30 GFLOP/s; with it off, the same weights go through
``F.multi_head_attention_forward`` and flash attention, as the
cross-attention already does: same arithmetic up to rounding, ~10 % less
time. Batching on the CPU was measured slower (cache pressure): one segment
per call there unless ``--batch`` says otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch

from soundforge.engines.base import NoticeCallback as Notice
from soundforge.engines.local.device import check_precision
from soundforge.engines.local.onednn import Bf16Network, OneDnnKernels, bf16_network
from soundforge.errors import EngineError, OutOfMemoryError

if TYPE_CHECKING:
    from soundforge.engines.local.request import RunRequest
    from soundforge.engines.local.streaming import Job, Plan

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Auto batch on a GPU: never more segments per call than this, and leave this
# share of the free memory for everything else (cuDNN workspaces, fragmentation).
MAX_AUTO_BATCH = 16
MEMORY_HEADROOM = 0.7




class SegmentBackend(Protocol):
    """Evaluates networks on segment windows.

    ``run`` gets jobs in the order they must be accumulated and returns, for each,
    the network output centre-trimmed to the job's chunk, ``(sources, channels,
    chunk)`` float32 on ``device``.
    """

    name: str
    device: torch.device
    batch: int  # how many jobs the scheduler may hand over at once

    def run(self, jobs: Sequence[Job]) -> list[torch.Tensor]: ...


def center_trim(out: torch.Tensor, length: int) -> torch.Tensor:
    # demucs.utils.center_trim, on the last axis.
    delta = out.shape[-1] - length
    if delta < 0:
        raise EngineError(f"The model returned {out.shape[-1]} samples, fewer than {length}.")
    if delta:
        out = out[..., delta // 2 : delta // 2 + length]
    return out


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the plain RuntimeError MPS and older builds raise."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def precision_context(
    device: torch.device, precision: str
) -> contextlib.AbstractContextManager[Any]:
    """Autocast for bf16/fp16; nothing for fp32 (the exact reference path).

    Autocast keeps float32 where it is needed for accuracy (normalisations,
    softmax, the STFT's input) and runs matrix products and convolutions in the
    reduced type, which is where the time goes.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def place_members(plan: Plan, device: torch.device) -> None:
    """Move the networks that will run, and their overlap windows, to ``device``."""
    for member in plan.active_members:
        member.model.to(device)
        member.window = member.window.to(device)


def to_device(window: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host window on ``device``: through pinned memory without blocking on CUDA."""
    if device.type == "cpu":
        return window
    if device.type == "cuda":
        return window.pin_memory().to(device, non_blocking=True)
    return window.to(device)


class ReferenceBackend:
    """The official modules, called exactly as ``apply_model`` calls them, with
    windows of one network stacked ``batch`` at a time."""

    name = "reference"

    def __init__(
        self,
        device: torch.device,
        *,
        precision: str = "fp32",
        batch: int = 1,
        auto_batch: bool = False,
        notice: Notice | None = None,
    ) -> None:
        self.device = device
        self.precision = precision
        self.batch = max(1, batch)
        self.auto_batch = auto_batch
        self._notice = notice or (lambda text: log.warning("%s", text))

    def run(self, jobs: Sequence[Job]) -> list[torch.Tensor]:
        outputs: list[torch.Tensor | None] = [None] * len(jobs)
        for indices in group_jobs(jobs):
            results = self._forward([jobs[i] for i in indices])
            for index, out in zip(indices, results, strict=True):
                outputs[index] = out
        return [out for out in outputs if out is not None]

    def _forward(self, jobs: Sequence[Job]) -> list[torch.Tensor]:
        """Jobs of one network and one window length, ``batch`` per call; out of
        memory, the batch is halved and the failed call made again."""
        results: list[torch.Tensor] = []
        done = 0
        while done < len(jobs):
            part = jobs[done : done + self.batch]
            try:
                results += self._call(part)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_cached_memory(self.device)
                if len(part) == 1:
                    raise OutOfMemoryError(
                        f"The {self.device} device ran out of memory on one segment of the "
                        "model."
                    ) from None
                self.batch = len(part) // 2
                self.auto_batch = False
                self._notice(
                    f"Out of {self.device} memory with {len(part)} segments per call: "
                    f"retrying with {self.batch}."
                )
                continue
            done += len(part)
        return results

    def _call(self, jobs: Sequence[Job]) -> list[torch.Tensor]:
        model = jobs[0].member.model
        windows = torch.stack([job.window for job in jobs])
        measuring = self.auto_batch and len(jobs) == 1 and self.device.type == "cuda"
        if measuring:
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
        with torch.no_grad(), precision_context(self.device, self.precision):
            out = model(to_device(windows, self.device))
        out = out.float()
        if measuring:
            self._size_batch(torch.cuda.max_memory_allocated(self.device) - before)
        return [center_trim(out[i], job.chunk) for i, job in enumerate(jobs)]

    def _size_batch(self, per_segment: int) -> None:
        """After one single-segment call: as many segments per call as fit."""
        self.auto_batch = False
        free, _ = torch.cuda.mem_get_info(self.device)
        fits = int(free * MEMORY_HEADROOM // max(1, per_segment)) + 1
        self.batch = max(1, min(MAX_AUTO_BATCH, fits))
        log.info(
            "%s: %.0f MiB per segment, %.0f MiB free: %d segments per call",
            self.device, per_segment / 2**20, free / 2**20, self.batch,
        )


def group_jobs(jobs: Sequence[Job]) -> list[list[int]]:
    """Indices of jobs that can share a forward call: same network, same window
    length (a ragged last segment gets its own call), in first-seen order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault((id(job.member), job.window.shape[-1]), []).append(index)
    return list(groups.values())


def release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- CPU fast path

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


class FastCpuBackend(ReferenceBackend):
    """The official modules and weights on the CPU, with fused attention."""

    name = "fast-cpu"

    def __init__(self, precision: str = "fp32", batch: int = 1) -> None:
        super().__init__(torch.device("cpu"), precision=precision, batch=batch)

    def _call(self, jobs: Sequence[Job]) -> list[torch.Tensor]:
        model = jobs[0].member.model
        windows = torch.stack([job.window for job in jobs])
        if bf16_weights_apply(model, self.precision):
            with torch.inference_mode(), Bf16Network():
                out = bf16_network(model)(windows).float()
        else:
            with torch.inference_mode(), fused_attention(), precision_context(
                self.device, self.precision
            ), fast_kernels(self.precision):
                out = model(windows).float()
        return [center_trim(out[i], job.chunk) for i, job in enumerate(jobs)]


def fast_kernels(precision: str) -> contextlib.AbstractContextManager[object]:
    """oneDNN's float32 kernels (``onednn.py``) where they apply: exact float32
    runs on a PyTorch build that has oneDNN. Autocast's reduced precisions keep
    the kernels autocast picks."""
    if precision == "fp32" and torch.backends.mkldnn.is_available():
        return OneDnnKernels()
    return contextlib.nullcontext()


def bf16_weights_apply(network: Any, precision: str) -> bool:
    """Whether a bf16 run uses the network's bf16 copy (``onednn.Bf16Network``)
    rather than autocast: for HTDemucs, the network its tests cover (HDemucs'
    LSTMs are not rerouted), on a build with oneDNN."""
    from demucs.htdemucs import HTDemucs

    return (
        precision == "bf16"
        and type(network) is HTDemucs
        and torch.backends.mkldnn.is_available()
    )


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
    model: Any,
    plan: Plan,
    device: torch.device,
    request: RunRequest,
    notice: Notice | None = None,
) -> SegmentBackend:
    """The backend for this run, with the plan's networks placed on ``device``."""
    check_precision(request.precision, device)
    place_members(plan, device)
    reason = fast_path_refusal(model, plan, device)
    if reason is None:
        log.info("separating %s with the fast CPU path (%s)", request.model, request.precision)
        # One segment per call unless asked: batching was measured slower on CPUs.
        return FastCpuBackend(request.precision, request.batch or 1)
    # Expected on a GPU; on the CPU it means a slower run, which deserves a warning.
    level = logging.INFO if device.type != "cpu" else logging.WARNING
    log.log(level, "separating %s on %s with the official modules: %s", request.model,
            device, reason)
    return ReferenceBackend(
        device,
        precision=request.precision,
        batch=request.batch or 1,
        # Sized from free memory after the first call; MPS reports no free memory.
        auto_batch=device.type == "cuda" and request.batch is None,
        notice=notice,
    )
