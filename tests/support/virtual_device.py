"""A second device on a CPU-only machine: CPU tensors that pretend to live on ``cuda:0``.

Nothing on a CPU-only machine can show that a model was left on the wrong
device: every tensor is on the CPU, so the GPU-only bug "the weights stay on the
CPU while the input moves to the GPU" goes unnoticed (the ``meta`` device does
not help: HTDemucs calls ``.item()``). This torch function mode adds the missing
second device. Tensors moved to ``cuda``/``cuda:0`` (``.to``, ``.cuda``, a
factory's ``device=``, ``Module.to``) keep their CPU data but are *tagged*; their
``.device`` says ``cuda:0``; and every operation checks its tensor operands the
way CUDA does: mixing a tagged tensor with an untagged one fails with CUDA's own
message ("Expected all tensors to be on the same device"), except for 0-dim
CPU scalars and the copying operations (``copy_``, indexing) that CUDA allows
across devices. ``.numpy()`` of a tagged tensor fails as it does on a GPU.

It records what crosses between the devices, so tests can check that what goes
back to the host is copied once, not per segment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

VIRTUAL = torch.device("cuda", 0)
_TAG = "_soundforge_virtual_device"
_PINNED = "_soundforge_pinned"


def on_virtual(tensor: torch.Tensor) -> bool:
    return bool(getattr(tensor, _TAG, False))


def _tag(value: Any, virtual: bool) -> Any:
    for item in tree_flatten(value)[0]:
        if isinstance(item, torch.Tensor):
            setattr(item, _TAG, virtual)
    return value


def _is_virtual_device(device: Any) -> bool | None:
    """True for cuda:0, False for cpu, None when no device is named."""
    if device is None:
        return None
    if isinstance(device, torch.Tensor):
        return on_virtual(device)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    if device.type == "cpu":
        return False
    if device.type == "cuda" and device.index in (None, 0):
        return True
    raise RuntimeError(f"the virtual device is cuda:0; {device} does not exist here")


class VirtualCuda(TorchFunctionMode):
    """Use as a context manager around code that should run "on the GPU"."""

    def __init__(self) -> None:
        super().__init__()
        self.to_device = 0  # tensors copied host → device
        self.to_host = 0  # tensors copied device → host
        self.pinned = 0  # host tensors pinned

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        # Property accessors arrive as method-wrappers of the descriptor.
        descriptor = getattr(func, "__self__", None)
        if descriptor is torch.Tensor.device:
            return VIRTUAL if on_virtual(args[0]) else torch.device("cpu")
        if descriptor is torch.Tensor.is_cuda:
            return on_virtual(args[0])
        if descriptor is torch.Tensor.data and func.__name__ == "__set__":
            func(*args, **kwargs)
            return _tag(args[0], on_virtual(args[1]))
        if func in (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu):
            return self._move(func, args, kwargs)
        if func is torch.Tensor.pin_memory:
            self.pinned += 1
            out = args[0].clone()
            setattr(out, _PINNED, True)
            return out
        if func is torch.Tensor.is_pinned:
            return bool(getattr(args[0], _PINNED, False))
        if func in (torch.Tensor.numpy, torch.Tensor.tolist) and on_virtual(args[0]):
            raise TypeError(
                "can't convert cuda:0 device type tensor to numpy. "
                "Use Tensor.cpu() to copy the tensor to host memory first."
            )
        named = _is_virtual_device(kwargs.get("device")) if "device" in kwargs else None
        if named is not None:
            kwargs.pop("device")
        operands = [
            t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
        ]
        devices = {on_virtual(t) for t in operands if not (t.dim() == 0 and not on_virtual(t))}
        crossing = func in (
            torch.Tensor.copy_,
            torch.Tensor.__setitem__,
            torch.Tensor.__getitem__,
            torch._has_compatible_shallow_copy_type,
        )
        if len(devices) > 1 and not crossing:
            raise RuntimeError(
                "Expected all tensors to be on the same device, but found at least two "
                f"devices, cuda:0 and cpu! (in {getattr(func, '__name__', func)})"
            )
        out = func(*args, **kwargs)
        if func is torch.Tensor.__setitem__ or func is torch.Tensor.copy_:
            return out
        if named is not None:
            return _tag(out, named)
        if func is torch.Tensor.__getitem__:
            return _tag(out, on_virtual(args[0]))
        return _tag(out, bool(devices) and devices.pop())

    def _move(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tensor, rest = args[0], args[1:]
        dtype = None
        memory_format = kwargs.get("memory_format")
        if func is torch.Tensor.cuda:
            target: bool | None = True
        elif func is torch.Tensor.cpu:
            target = False
        elif rest and isinstance(rest[0], torch.Tensor):
            target, dtype = on_virtual(rest[0]), rest[0].dtype
        else:
            device, dtype, _, memory_format = torch._C._nn._parse_to(*rest, **kwargs)
            target = _is_virtual_device(device)
        source = on_virtual(tensor)
        out = tensor
        if dtype is not None or memory_format is not None:
            out = tensor.to(dtype=dtype or tensor.dtype, memory_format=memory_format
                            or torch.preserve_format)
        if target is None or target == source:
            return _tag(out, source) if out is not tensor else tensor
        if target:
            self.to_device += 1
        else:
            self.to_host += 1
        out = out.clone() if out is tensor else out
        return _tag(out, target)
