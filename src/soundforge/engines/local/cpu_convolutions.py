"""Convolutions of the CPU fast path: the same arithmetic in faster layouts.

Measured on one full-size htdemucs segment (``make bench-floor``, 2 AVX-512
cores), two kinds of convolution ran far below oneDNN's rate:

* **2-D convolutions on contiguous (NCHW) tensors.** oneDNN reorders every
  input and output to its own blocked layout, and a strided transposed
  convolution on NCHW goes to a generic kernel about 4× slower. On
  channels-last tensors both take oneDNN's direct kernels: the decoder's
  48 → 96 channel 3×3 convolution at 512 × 336 went from 70 to 48 ms, its
  transposed convolution from 61 to 20 ms. So every 2-D convolution runs
  channels-last and **hands back a channels-last output**: the next
  convolution then starts without a reorder. Converting back after each one
  cost more than the convolution saved (a 66 MB copy each way). The networks
  only split the channel axis of these outputs with ``.view`` (always
  possible on channels-last strides) or ``reshape`` them; element-wise
  operations keep the layout.
* **Pointwise (kernel 1) 1-D convolutions from fewer than 16 channels**, as
  in DConv, which widens 6 or 12 channels back to 96 or 192 over 512
  frequency rows. oneDNN's kernel ran these at about 5 GFLOP/s (40 ms for
  0.2 GFLOP); the same product as one batched matrix multiplication
  (``baddbmm``) takes half the time, and a tenth on the time branch's single
  long row. Wider inputs stay with oneDNN, which is faster there.

Both change only the order of float32 additions, as any other kernel would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# Below this many input channels, a pointwise conv1d is a batched matmul.
NARROW_CHANNELS = 16


def channels_last_conv(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``F.conv2d`` or ``F.conv_transpose2d`` on channels-last input and
    weights; the output stays channels-last."""
    channels_last = torch.channels_last
    x = args[0].contiguous(memory_format=channels_last)
    weight = args[1].contiguous(memory_format=channels_last)
    return func(x, weight, *args[2:], **kwargs)


@dataclass(frozen=True)
class ConvCall:
    """The arguments of one ``F.conv1d`` call, by name."""

    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1

    @classmethod
    def of(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ConvCall:
        names = ("x", "weight", "bias", "stride", "padding", "dilation", "groups")
        values = dict(zip(names, args, strict=False))
        values.update(kwargs)
        values.setdefault("bias", None)
        if "input" in values:
            values["x"] = values.pop("input")
        return cls(**values)


def _all(value: Any, unit: int) -> bool:
    items = value if isinstance(value, tuple | list) else (value,)
    return all(item == unit for item in items)


def is_narrow_pointwise(conv: ConvCall) -> bool:
    """A plain kernel-1 conv1d (no stride, padding, dilation or groups) from
    fewer than ``NARROW_CHANNELS`` channels, on a batch of rows."""
    return (
        conv.x.dim() == 3
        and conv.weight.shape[-1] == 1
        and conv.weight.shape[1] < NARROW_CHANNELS
        and _all(conv.stride, 1)
        and _all(conv.dilation, 1)
        and _all(conv.padding, 0)
        and conv.groups == 1
    )


def narrow_pointwise_conv1d(conv: ConvCall) -> torch.Tensor:
    """``weight ⋅ x + bias`` for each row of the batch: (N, Cin, T) → (N, Cout, T)."""
    weight = conv.weight[:, :, 0]
    batched = weight.expand(conv.x.shape[0], *weight.shape)
    if conv.bias is None:
        return torch.bmm(batched, conv.x)
    return torch.baddbmm(conv.bias[:, None], batched, conv.x)
