"""Convolutions and normalisations of the CPU fast path: the same arithmetic
in faster layouts.

Measured on one full-size htdemucs segment (``make bench-floor``, 2 AVX-512
cores), two kinds of convolution and one normalisation ran far below what
the same kernels reach in another layout:

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
* **GroupNorm over a transposed (batch, tokens, channels) stream.** The
  transformer's ``norm_out`` normalises its (B, T, C) output by handing
  GroupNorm the transposed view (B, C, T). PyTorch's kernel copied it to
  contiguous and returned a (B, C, T) tensor, so the residual stream came back
  transposed and every following ``x + f(x)`` mixed two layouts (1.7 ms
  instead of 0.1 ms at 2688 × 512). Seen as a channels-last (B, C, 1, T)
  tensor, the same memory goes to GroupNorm's channels-last kernel, which
  keeps the layout: 0.15 ms instead of 2.1, and the stream stays contiguous.

All of them change only the order of float32 additions, as any other kernel
would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# Below this many input channels, a pointwise conv1d is a batched matmul.
NARROW_CHANNELS = 16


def named_arguments(
    names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """A torch function's positional and keyword arguments, by name."""
    values = dict(zip(names, args, strict=False))
    values.update(kwargs)
    return values


def channels_last_conv(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``F.conv2d`` or ``F.conv_transpose2d`` on channels-last input and
    weights; the output stays channels-last."""
    channels_last = torch.channels_last
    x = args[0].contiguous(memory_format=channels_last)
    weight = args[1].contiguous(memory_format=channels_last)
    return func(x, weight, *args[2:], **kwargs)


def is_transposed_stream(x: torch.Tensor) -> bool:
    """A (B, C, T) view of contiguous (B, T, C) memory."""
    return x.dim() == 3 and x.transpose(1, 2).is_contiguous() and not x.is_contiguous()


def group_norm_on_stream(
    x: torch.Tensor,
    groups: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """``F.group_norm`` of a transposed stream, returned in the same layout."""
    batch, channels, tokens = x.shape
    as_image = x.transpose(1, 2).view(batch, 1, tokens, channels).permute(0, 3, 1, 2)
    return torch.nn.functional.group_norm(as_image, groups, weight, bias, eps).squeeze(2)


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
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        values = named_arguments(names, args, kwargs)
        values.setdefault("bias", None)
        return cls(x=values.pop("input"), **values)


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
