"""Compute devices, precisions and CPU threads: what the user may ask for, and
whether this machine can give it.

A device is any torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``)
or ``auto`` (CUDA, else Apple MPS, else the CPU), as the official CLI takes
it. Asking for something this machine cannot do is an error that says what to
do, never a quiet run somewhere else: an explicit GPU that is not there, a GPU
index past the last one, a CUDA request on PyTorch's CPU-only build, and
``auto`` on a machine that has an NVIDIA GPU that this PyTorch cannot use (the
user expects the GPU; a CPU run would be ten times slower without a word).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from soundforge.config import DEVICE_SYNTAX
from soundforge.errors import InvalidOptionError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI must start fast
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")

# Present when the NVIDIA kernel driver is loaded: the machine has a GPU, whatever
# PyTorch build is installed (read through a tuple so tests can point elsewhere).
NVIDIA_MARKERS: tuple[str, ...] = ("/proc/driver/nvidia/version", "/dev/nvidia0")
CPUINFO = Path("/proc/cpuinfo")


def parse_device(choice: str | None) -> str:
    """The normalised device string, or an error naming the accepted forms.

    Only the syntax is checked: whether the machine has the device is
    ``resolve_device``'s job, on the machine that runs the model.
    """
    text = (choice or "auto").strip().lower()
    if not DEVICE_SYNTAX.match(text):
        raise InvalidOptionError(
            f"Unknown device {choice!r}: use auto, cpu, cuda, cuda:N (N = GPU number) or mps."
        )
    return text


def nvidia_gpu_present() -> bool:
    return any(Path(marker).exists() for marker in NVIDIA_MARKERS)


def _cuda_unusable_reason() -> str:
    import torch

    if torch.version.cuda is None:
        return (
            f"this PyTorch ({torch.__version__}) is the CPU-only build. Install PyTorch's "
            "CUDA build (see the README, 'GPU'), or use --device cpu"
        )
    return (
        f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU: "
        "check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES, or use --device cpu"
    )


def resolve_device(choice: str | None) -> torch.device:
    """The torch device for ``choice`` on this machine, or an error saying why not."""
    import torch

    text = parse_device(choice)
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if text == "auto":
        if cuda:
            return torch.device("cuda")
        if nvidia_gpu_present():
            raise InvalidOptionError(
                "This machine has an NVIDIA GPU but it cannot be used: "
                + _cuda_unusable_reason() + " to run on the CPU on purpose."
            )
        return torch.device("mps" if mps else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not cuda:
            raise InvalidOptionError(f"{text} was asked for but " + _cuda_unusable_reason() + ".")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InvalidOptionError(
                f"{text} is not there: this machine has {count} CUDA GPU"
                f"{'s' if count != 1 else ''} (cuda:0"
                f"{f' to cuda:{count - 1}' if count > 1 else ''}). Use one of those or auto."
            )
    if device.type == "mps":
        if not mps:
            raise InvalidOptionError(
                f"{text} was asked for but Apple's Metal backend is not available; "
                "use --device cpu."
            )
        if device.index not in (None, 0):
            raise InvalidOptionError(f"{text} is not there: Apple's Metal has one device, mps.")
    return device


def available_devices() -> list[str]:
    """Device choices this machine can run, for forms: auto, cpu, then each GPU."""
    import torch

    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found += ["cuda"] if count == 1 else [f"cuda:{i}" for i in range(count)]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


def device_label(choice: str) -> str:
    """A person's name for a device choice."""
    if choice == "auto":
        return "Automatic (GPU when present)"
    if choice == "cpu":
        return "CPU"
    if choice == "mps":
        return "Apple GPU (Metal)"
    if choice.startswith("cuda"):
        try:
            import torch

            index = int(choice.split(":")[1]) if ":" in choice else 0
            name = torch.cuda.get_device_name(index)
        except Exception:  # a name is a nicety: never fail a page for it
            name = "NVIDIA GPU"
        return f"{name} ({choice})"
    return choice


# --------------------------------------------------------------------------- precision


def cpu_flags() -> set[str]:
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_runs_bf16() -> bool:
    """Whether this processor computes bfloat16 natively (AMX or AVX512-BF16)."""
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device does not run natively, saying why."""
    if precision not in PRECISIONS:
        raise InvalidOptionError(
            f"Unknown precision {precision!r}: use {', '.join(PRECISIONS)}."
        )
    if precision == "fp32" or device.type == "mps":
        return
    if device.type == "cuda":
        import torch

        if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise InvalidOptionError(
                f"--precision bf16 needs a GPU with native bfloat16 (NVIDIA Ampere or newer); "
                f"{torch.cuda.get_device_name(device)} has none: use --precision fp16."
            )
        return
    if precision == "fp16":
        raise InvalidOptionError(
            "--precision fp16 is for GPUs; on the CPU use bf16 (on processors with "
            "AMX or AVX512-BF16) or fp32."
        )
    if not cpu_runs_bf16():
        raise InvalidOptionError(
            "--precision bf16 on the CPU needs native bfloat16 (AMX or AVX512-BF16), "
            "which this processor does not have; use --precision fp32."
        )


# --------------------------------------------------------------------------- runners


def configure_threads(threads: int) -> int:
    """Use every core unless told otherwise (SOUNDFORGE_THREADS)."""
    import torch

    count = threads if threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(count)
    return count


@dataclass(frozen=True)
class RunnerPlacement:
    """Where the runner of one worker slot computes: ``slot`` of ``slots``
    concurrent runners on this machine."""

    slot: int = 0
    slots: int = 1

    def threads(self, configured: int) -> int:
        """CPU threads for this runner: the configured number, else an equal share
        of the cores, so that concurrent runners do not each take every core."""
        if configured > 0:
            return configured
        return max(1, (os.cpu_count() or 1) // max(1, self.slots))

    def device(self, choice: str, gpu_count: int) -> str:
        """The device this slot uses for ``choice``: an unnumbered CUDA choice
        (``auto`` on a CUDA machine, or ``cuda``) goes to GPU ``slot mod GPUs``,
        so jobs spread over the GPUs and each runner holds one model on one GPU.
        A numbered GPU, the CPU and MPS are used as asked."""
        if gpu_count <= 1 or choice not in ("auto", "cuda"):
            return choice
        return f"cuda:{self.slot % gpu_count}"


def cuda_device_count() -> int:
    """GPUs CUDA can use here (0 without CUDA); asks without creating a context."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
