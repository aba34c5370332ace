"""Float32 kernels for the CPU fast path: the same arithmetic on faster routines.

Measured on one htdemucs segment (``make bench-floor``), PyTorch sends the
transformer's linear layers to MKL's sgemm at about 110 GFLOP/s per core,
while oneDNN's matmul reaches 220 or more on the same shapes. oneDNN's
``_linear_pointwise`` (the kernel PyTorch's compiler uses for frozen linear
layers) takes ordinary tensors, so no conversion to and from oneDNN's own
tensor type is paid: on a 2688 × 512 → 2048 product that conversion had
doubled the time (25 → 12 ms). Everything is float32 through and through (SDiff
against the reference stays above 125 dB on full-size htdemucs), so it fits
the exact path.

``OneDnnKernels`` is a torch function mode that reroutes, for the duration of
a forward call:

* ``F.linear`` → oneDNN's matmul;
* ``F.multi_head_attention_forward`` → the same projections through oneDNN's
  matmul, and the attention itself a block of queries at a time through the
  same matmul (``blocked_attention``), for the plain case HTDemucs uses (no
  masks, no attention weights returned, no dropout); anything else goes to
  PyTorch's own function;
* ``F.conv2d``, ``F.conv_transpose2d``, narrow pointwise ``F.conv1d`` and
  ``F.group_norm`` of a transposed stream → faster layouts of the same
  operations (``cpu_layouts.py``).

Function modes are per thread, so nothing outside the call is affected; they
only intercept float32 and bfloat16 CPU tensors (``Bf16Network`` below) and
hand everything else to PyTorch unchanged.
"""

from __future__ import annotations

import copy
import math
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from soundforge.engines.local.cpu_layouts import (
    ConvCall,
    channels_last_conv,
    group_norm_on_stream,
    is_narrow_pointwise,
    is_transposed_stream,
    named_arguments,
    narrow_pointwise_conv1d,
)

# Bytes of attention scores per block of queries: 2.75 MB (256 queries × 2688
# keys in float32, 512 in bf16) measured fastest on htdemucs' attention, whose
# key count is 1344 or 2688; the block's queries follow from the key count.
SCORE_BYTES_PER_BLOCK = 256 * 2688 * 4

KERNEL_DTYPES = (torch.float32, torch.bfloat16)


def _plain_cpu_float(*tensors: torch.Tensor | None) -> bool:
    """Dense CPU tensors of one dtype that oneDNN's kernels take."""
    present = [t for t in tensors if t is not None]
    dtype = present[0].dtype
    return dtype in KERNEL_DTYPES and all(
        t.device.type == "cpu" and t.dtype == dtype and t.layout == torch.strided
        for t in present
    )


def _matmul(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``rows ⋅ weightᵀ + bias`` for 2-D tensors whose last axis is contiguous."""
    return torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` through oneDNN's matmul."""
    out = _matmul(x.reshape(-1, x.shape[-1]).contiguous(), weight.contiguous(), bias)
    return out.view(*x.shape[:-1], weight.shape[0])


def query_block(keys: int, dtype: torch.dtype = torch.float32) -> int:
    """Queries per attention block for ``keys`` keys of ``dtype``."""
    return max(16, SCORE_BYTES_PER_BLOCK // (keys * dtype.itemsize))


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q kᵀ / √d) v`` for (batch, heads, length, d) tensors, a block of
    queries at a time through oneDNN's matmul.

    A block's scores stay in cache, and its two products run at oneDNN's
    matmul rate: about 1.3× faster than PyTorch's fused flash kernel on
    htdemucs' 2688- and 1344-token attention on 2 AVX-512 cores, with float32
    scores and softmax all the same.
    """
    batch, heads, length, dim = q.shape
    out = torch.empty(batch, heads, length, v.shape[-1], dtype=q.dtype)
    scaled = (q * (1 / math.sqrt(dim))).contiguous()
    keys_all = k.contiguous()
    block = query_block(k.shape[-2], q.dtype)
    for b in range(batch):
        for h in range(heads):
            keys = keys_all[b, h]
            values_t = v[b, h].t().contiguous()  # the matmul takes Wᵀ
            for start in range(0, length, block):
                scores = _matmul(scaled[b, h, start : start + block], keys, None)
                # PyTorch's CPU softmax computes bf16 in float32 and rounds once.
                probs = scores.softmax(dim=-1)
                out[b, h, start : start + block] = _matmul(probs, values_t, None)
    return out


def _attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: torch.Tensor | None,
    in_proj_bias: torch.Tensor | None,
    bias_k: torch.Tensor | None,
    bias_v: torch.Tensor | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: torch.Tensor,
    out_proj_bias: torch.Tensor | None,
    training: bool = True,
    key_padding_mask: torch.Tensor | None = None,
    need_weights: bool = True,
    attn_mask: torch.Tensor | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: torch.Tensor | None = None,
    k_proj_weight: torch.Tensor | None = None,
    v_proj_weight: torch.Tensor | None = None,
    static_k: torch.Tensor | None = None,
    static_v: torch.Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[torch.Tensor, None] | None:
    """``F.multi_head_attention_forward`` for unbatched-first (L, N, E) inputs
    without masks or extras; None where the case is not that one."""
    plain = (
        not (training and dropout_p)
        and not need_weights
        and attn_mask is None
        and key_padding_mask is None
        and bias_k is None
        and bias_v is None
        and not add_zero_attn
        and not use_separate_proj_weight
        and static_k is None
        and static_v is None
        and not is_causal
        and in_proj_weight is not None
        and query.dim() == 3
        and query.shape[-1] == embed_dim_to_check
        and embed_dim_to_check % num_heads == 0
        and _plain_cpu_float(query, key, value, in_proj_weight, in_proj_bias,
                             out_proj_weight, out_proj_bias)
    )
    if not plain:
        return None
    assert in_proj_weight is not None
    length, batch, embed = query.shape
    head_dim = embed // num_heads
    w_q, w_k, w_v = in_proj_weight.chunk(3)
    b_q, b_k, b_v = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
    if query is key and key is value:
        q, k, v = onednn_linear(query, in_proj_weight, in_proj_bias).chunk(3, dim=-1)
    else:
        q = onednn_linear(query, w_q, b_q)
        k = onednn_linear(key, w_k, b_k)
        v = onednn_linear(value, w_v, b_v)

    def heads(t: torch.Tensor) -> torch.Tensor:
        # (S, N, E) → (N, heads, S, head_dim), as PyTorch lays them out.
        return t.reshape(t.shape[0], batch * num_heads, head_dim).transpose(0, 1).reshape(
            batch, num_heads, t.shape[0], head_dim
        )

    out = blocked_attention(heads(q), heads(k), heads(v))
    out = out.permute(2, 0, 1, 3).reshape(length * batch, embed)
    return onednn_linear(out, out_proj_weight, out_proj_bias).view(length, batch, embed), None


class OneDnnKernels(TorchFunctionMode):
    """Reroutes linear layers, attention (above), convolutions and GroupNorm
    (``cpu_layouts.py``)."""

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and not set(kwargs) - {"bias"}:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if x.numel() and _plain_cpu_float(x, weight, bias):
                return onednn_linear(x, weight, bias)
        elif func is F.multi_head_attention_forward:
            result = _attention(*args, **kwargs)
            if result is not None:
                return result
        elif func in (F.conv2d, F.conv_transpose2d):
            # Input and weight positional, as torch.nn's layers pass them.
            if len(args) >= 2 and _plain_cpu_float(*args[:2]) and args[0].dim() == 4:
                return channels_last_conv(func, args, kwargs)
        elif func is F.conv1d:
            conv = ConvCall.of(args, kwargs)
            if _plain_cpu_float(conv.x, conv.weight, conv.bias) and is_narrow_pointwise(conv):
                return narrow_pointwise_conv1d(conv)
        elif func is F.group_norm and len(args) + len(kwargs) == 5:
            norm = named_arguments(("input", "num_groups", "weight", "bias", "eps"), args, kwargs)
            x = norm["input"]
            if _plain_cpu_float(x, norm["weight"], norm["bias"]) and is_transposed_stream(x):
                return group_norm_on_stream(
                    x, norm["num_groups"], norm["weight"], norm["bias"], norm["eps"]
                )
        return func(*args, **kwargs)


# Operations whose tensors must share their weights' dtype, and those that
# need float32 whatever the network's dtype (PyTorch's CPU FFT has no bf16).
_WEIGHTED = {
    F.linear, F.conv1d, F.conv2d, F.conv_transpose1d, F.conv_transpose2d,
    F.group_norm, F.layer_norm, F.multi_head_attention_forward,
}
_FLOAT32_ONLY = {torch.stft, torch.istft, torch.Tensor.stft, torch.Tensor.istft}


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
        return value.to(dtype)
    return value


class Bf16Network(OneDnnKernels):
    """Runs a network whose weights were converted to bfloat16 (``bf16_network``).

    Autocast converts every weight and activation at every operation, and on
    the AVX512-BF16 CPU a third of its time went to those conversions. Here the
    weights are bf16 once and for all and activations stay bf16 from layer to
    layer: each weighted operation gets its inputs in its weights' dtype (the
    network mixes in float32 values such as its positional embeddings), the
    STFT and its inverse run in float32, and the products go through oneDNN's
    native bf16 matmul (above), softmax in float32.
    """

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _FLOAT32_ONLY:
            args = tuple(_cast(a, torch.float32) for a in args)
        elif func in _WEIGHTED:
            weight = _weight_of(func, args, kwargs)
            if weight is not None:
                args = tuple(_cast(a, weight.dtype) for a in args)
                kwargs = {k: _cast(v, weight.dtype) for k, v in kwargs.items()}
        return super().__torch_function__(func, types, args, kwargs)


def _weight_of(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    if func is F.multi_head_attention_forward:
        weight = args[5] if len(args) > 5 else kwargs.get("in_proj_weight")
    elif func in (F.group_norm, F.layer_norm):
        weight = args[2] if len(args) > 2 else kwargs.get("weight")
    else:
        weight = args[1] if len(args) > 1 else kwargs.get("weight")
    return weight if isinstance(weight, torch.Tensor) else None


_bf16_copies: weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module] = (
    weakref.WeakKeyDictionary()
)


def bf16_network(network: torch.nn.Module) -> torch.nn.Module:
    """A bfloat16 copy of ``network``, made once per network and kept while the
    network lives (the runner keeps its model between jobs)."""
    copy_ = _bf16_copies.get(network)
    if copy_ is None:
        copy_ = copy.deepcopy(network).to(torch.bfloat16).eval()
        _bf16_copies[network] = copy_
    return copy_
