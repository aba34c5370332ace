"""Where one htdemucs segment's time goes on this CPU, and how fast an exact
float32 path could possibly be.

``make bench-floor``. Builds a full-size random-weight htdemucs (speed does
not depend on the weights' values), times one 7.8 s segment through the
official modules (the reference) and through SoundForge's fast CPU path (and
its bf16 network where the processor runs bf16 natively), first
with the C library's default allocator (as the official CLI runs) and then with
the runner's large-buffer setting (``allocator.py``) for both, then:

* counts the arithmetic of each kind of work (matrix products, convolutions,
  attention) and the time the fast path spends in each (PyTorch's profiler);
* measures the best rate this machine's kernels reach on the model's own
  shapes: MKL's sgemm, oneDNN's matmul and 1×1 convolution for the linear layers,
  oneDNN for the convolutions (contiguous and channels-last), the fused kernel
  for attention;
* prints the lower bound that follows: every operation at that best rate and
  everything else (normalisations, activations, copies, STFT) free.

No output sample may change beyond float32 rounding, so the arithmetic is
fixed: this bound is what any exact path built from these kernels can reach.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from soundforge.engines.local.allocator import keep_large_buffers
from soundforge.engines.local.backends import fast_kernels, fused_attention
from soundforge.engines.local.device import cpu_runs_bf16
from soundforge.engines.local.onednn import Bf16Network, bf16_network, onednn_linear

SEGMENT_SAMPLES = 343980  # htdemucs' training segment: 7.8 s at 44.1 kHz
CLASSES = ("matrix products", "convolutions", "attention")
OPS = {
    "matrix products": {"aten::addmm", "aten::mm", "aten::mkldnn_linear",
                        "mkldnn::_linear_pointwise"},
    # The fast path runs DConv's narrow pointwise convolutions as batched
    # matmuls (cpu_layouts.py); nothing else in htdemucs uses bmm.
    "convolutions": {"aten::mkldnn_convolution", "aten::_convolution",
                     "aten::convolution_overrideable", "aten::slow_conv_transpose2d",
                     "aten::bmm", "aten::baddbmm"},
    "attention": {"aten::_scaled_dot_product_flash_attention_for_cpu"},
}
FLOP_OPS = {"matrix products": {"addmm", "mm", "bmm"}, "convolutions": {"convolution"},
            "attention": {"_scaled_dot_product_flash_attention_for_cpu"}}


def seconds(run: Callable[[], Any], repeat: int = 3) -> float:
    run()  # warm-up: oneDNN builds its kernels on first use
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def attention_flops(query: torch.Size, key: torch.Size, *args: Any, **kwargs: Any) -> int:
    """The flop counter passes shapes; PyTorch has no formula for the CPU kernel."""
    batch, heads, queries, dim = query
    return 4 * batch * heads * queries * key[-2] * dim  # QKᵀ and AV


def flops_by_class(model: torch.nn.Module, mix: torch.Tensor) -> dict[str, float]:
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: attention_flops}
    with torch.no_grad(), fused_attention(), FlopCounterMode(
        display=False, custom_mapping=mapping  # type: ignore[arg-type]
    ) as counter:
        model(mix)
    totals = dict.fromkeys(CLASSES, 0.0)
    for op, count in counter.get_flop_counts()["Global"].items():
        for name, ops in FLOP_OPS.items():
            if str(op).split(".")[-1] in ops:
                totals[name] += count
    return totals


def profile_by_class(model: torch.nn.Module, mix: torch.Tensor) -> dict[str, float]:
    with torch.no_grad(), fused_attention(), fast_kernels("fp32"), profile(
        activities=[ProfilerActivity.CPU]
    ) as prof:
        model(mix)
    times = dict.fromkeys((*CLASSES, "everything else"), 0.0)
    for event in prof.key_averages():
        name = next((c for c, ops in OPS.items() if event.key in ops), "everything else")
        times[name] += event.self_cpu_time_total / 1e6
    return times


def best_rates(model: Any) -> dict[str, float]:
    """GFLOP/s of the fastest kernel available here, on the model's own shapes."""
    tokens = [2688, 1344]  # frequency and time tokens of the transformer
    dim, hidden = model.crosstransformer.layers[0].linear1.in_features, 2048
    with torch.no_grad():
        linear = []
        for n in tokens:
            x, w = torch.randn(n, dim), torch.randn(hidden, dim)
            flops = 2 * n * dim * hidden
            linear.append(flops / seconds(partial(F.linear, x, w)))
            # The same product as a 1×1 convolution goes to oneDNN instead of MKL.
            x4 = x.view(1, n, 1, dim).permute(0, 3, 1, 2)
            w4 = w.view(hidden, dim, 1, 1).contiguous(memory_format=torch.channels_last)
            linear.append(flops / seconds(partial(F.conv2d, x4, w4)))
            # oneDNN's matmul, conversions included (what the fast path runs).
            linear.append(flops / seconds(partial(onednn_linear, x, w, None)))
        conv = []
        for channels, rows in [(384, 8), (192, 32), (96, 128), (48, 512)]:
            x, w = torch.randn(1, channels, rows, 336), torch.randn(2 * channels, channels, 3, 3)
            flops = 2 * channels * 2 * channels * 9 * rows * 336
            conv.append(flops / seconds(partial(F.conv2d, x, w, padding=1)))
            last = torch.channels_last
            x, w = x.contiguous(memory_format=last), w.contiguous(memory_format=last)
            conv.append(flops / seconds(partial(F.conv2d, x, w, padding=1)))
        attention = []
        for queries, keys in [(2688, 2688), (1344, 1344), (2688, 1344)]:
            q, k = torch.randn(1, 8, queries, 64), torch.randn(1, 8, keys, 64)
            flops = 4 * 8 * queries * keys * 64
            attention.append(flops / seconds(partial(F.scaled_dot_product_attention, q, k, k)))
    return {"matrix products": max(linear) / 1e9, "convolutions": max(conv) / 1e9,
            "attention": max(attention) / 1e9}


def main() -> None:
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], bottom_channels=512,
                     segment=Fraction(39, 5)).eval()
    mix = torch.randn(1, 2, SEGMENT_SAMPLES)
    print(f"htdemucs, one 7.8 s segment, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}\n", flush=True)

    def reference() -> None:
        with torch.no_grad():
            model(mix)

    def fast() -> None:
        with torch.no_grad(), fused_attention(), fast_kernels("fp32"):
            model(mix)

    bf16_copy = bf16_network(model)

    def bf16() -> None:
        # What `--precision bf16` runs on the CPU (backends.FastCpuBackend).
        with torch.inference_mode(), Bf16Network():
            bf16_copy(mix)

    native_bf16 = cpu_runs_bf16()

    # First with the C library's default allocator (what the official CLI runs
    # with), then with the runner's large-buffer setting (allocator.py) for both.
    default_ref_s, default_fast_s = seconds(reference), seconds(fast)
    default_bf16_s = seconds(bf16) if native_bf16 else None
    tuned = keep_large_buffers()
    ref_s, fast_s = seconds(reference), seconds(fast)
    bf16_s = seconds(bf16) if native_bf16 else None
    flops = flops_by_class(model, mix)
    spent = profile_by_class(model, mix)
    best = best_rates(model)
    scale = fast_s / sum(spent.values())  # profiler overhead, spread evenly

    print("| work | GFLOP | fast path s | GFLOP/s now | best GFLOP/s here | s at best |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    floor = 0.0
    for name in CLASSES:
        now = spent[name] * scale
        at_best = flops[name] / 1e9 / best[name]
        if name == "attention" and now == 0:
            # The fast path computes attention as oneDNN matrix products (onednn.py):
            # its time is in the row above, so its bound is at the products' rate.
            at_best = flops[name] / 1e9 / best["matrix products"]
            floor += at_best
            print(f"| {name} | {flops[name] / 1e9:.0f} | in matrix products | – "
                  f"| {best['matrix products']:.0f} (products) | {at_best:.2f} |")
            continue
        floor += at_best
        print(f"| {name} | {flops[name] / 1e9:.0f} | {now:.2f} | {flops[name] / 1e9 / now:.0f} "
              f"| {best[name]:.0f} | {at_best:.2f} |")
    rest = spent["everything else"] * scale
    print(f"| everything else | – | {rest:.2f} | – | – | 0 (bound) |")
    print("\n| seconds per segment | default allocator | large buffers on the heap |")
    print("| --- | ---: | ---: |")
    if not tuned:
        print("(this C library is not glibc: the runner's setting does not apply; both "
              "columns ran with the defaults)")
    print(f"| reference (official modules) | {default_ref_s:.2f} | {ref_s:.2f} |")
    print(f"| SoundForge fast path | {default_fast_s:.2f} | {fast_s:.2f} |")
    print(f"| speed-up, same allocator | {default_ref_s / default_fast_s:.2f}× "
          f"| {ref_s / fast_s:.2f}× |")
    if default_bf16_s is not None and bf16_s is not None:
        print(f"| SoundForge bf16 | {default_bf16_s:.2f} | {bf16_s:.2f} |")
        print(f"| bf16 speed-up against the fp32 reference, same allocator "
              f"| {default_ref_s / default_bf16_s:.2f}× | {ref_s / bf16_s:.2f}× |")
    else:
        print("(bf16 not timed: this processor has neither AMX nor AVX512-BF16)")
    print(f"\nSoundForge as the runner runs it against the official modules as the "
          f"official CLI runs them: {default_ref_s / fast_s:.2f}×"
          + (f", bf16 {default_ref_s / bf16_s:.2f}×" if bf16_s is not None else ""))
    print(f"1.5× target, same allocator:   {ref_s / 1.5:.2f} s")
    print(f"lower bound, exact float32:    {floor:.2f} s ({ref_s / floor:.2f}×) with every "
          "operation at the best rate measured here and everything else free")


if __name__ == "__main__":
    main()
