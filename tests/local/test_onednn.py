"""oneDNN's float32 kernels on the CPU fast path: same results, used where meant.

Each rerouted operation is compared with PyTorch's own on the shapes and
module settings the Demucs networks use, plus the cases the reroute must hand
back to PyTorch untouched; the fast backend is then checked to really run
them in float32 and to leave autocast's precisions alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from soundforge.engines.local.backends import FastCpuBackend, bf16_weights_apply
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.onednn import (
    OneDnnKernels,
    bf16_network,
    blocked_attention,
    query_block,
)
from soundforge.engines.local.streaming import Job, make_plan

# float32 rounding differs between MKL and oneDNN, nothing else does.
ATOL = 1e-5
ONEDNN_MATMUL = "mkldnn::_linear_pointwise"


def ops_run(call: Callable[[], object]) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    return {event.key for event in prof.key_averages()}


@pytest.mark.parametrize("shape", [(7, 16), (3, 5, 16), (2, 3, 4, 16)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_layers_agree_and_go_to_onednn(shape: tuple[int, ...], bias: bool) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 24, bias=bias)
    x = torch.randn(*shape)
    with torch.inference_mode():
        expected = layer(x)
        with OneDnnKernels():
            got = layer(x)
            ops = ops_run(lambda: layer(x))
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)
    assert ONEDNN_MATMUL in ops and "aten::addmm" not in ops


def test_a_non_contiguous_input_gives_the_same_result() -> None:
    layer = torch.nn.Linear(16, 8)
    x = torch.randn(16, 10).t()  # a transposed view
    with torch.inference_mode(), OneDnnKernels():
        got = layer(x)
    torch.testing.assert_close(got, torch.nn.functional.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("cross", [False, True])
def test_attention_agrees_with_pytorch(batch_first: bool, cross: bool) -> None:
    torch.manual_seed(1)
    attention = torch.nn.MultiheadAttention(32, 4, batch_first=batch_first).eval()
    shape = (2, 9, 32) if batch_first else (9, 2, 32)
    query = torch.randn(*shape)
    memory = torch.randn(2, 5, 32) if batch_first else torch.randn(5, 2, 32)
    key = memory if cross else query
    with torch.inference_mode():
        expected, _ = attention(query, key, key, need_weights=False)
        with OneDnnKernels():
            got, weights = attention(query, key, key, need_weights=False)
            ops = ops_run(lambda: attention(query, key, key, need_weights=False))
    assert weights is None
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)
    assert ONEDNN_MATMUL in ops and "aten::addmm" not in ops


@pytest.mark.parametrize(
    "queries, keys",
    # One block exactly, several with a ragged last one, fewer queries than a block.
    [
        (query_block(40), 40),
        (2 * query_block(3000) + 37, 3000),
        (2 * query_block(3000, torch.bfloat16) + 37, 3000),
        (5, 700),
    ],
)
def test_blocked_attention_matches_the_fused_kernel(queries: int, keys: int) -> None:
    torch.manual_seed(4)
    q = torch.randn(2, 3, queries, 16)
    k, v = torch.randn(2, 3, keys, 16), torch.randn(2, 3, keys, 16)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(blocked_attention(q, k, v), expected, atol=ATOL, rtol=1e-5)
    # bf16 blocks hold twice the queries; products in bf16, softmax in float32.
    in_bf16 = blocked_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert in_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(in_bf16.float(), expected, atol=3e-2, rtol=3e-2)


def test_attention_with_a_mask_or_weights_is_left_to_pytorch() -> None:
    torch.manual_seed(2)
    attention = torch.nn.MultiheadAttention(16, 2).eval()
    x = torch.randn(6, 1, 16)
    mask = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    with torch.inference_mode():
        masked, _ = attention(x, x, x, attn_mask=mask, need_weights=False)
        _, weights = attention(x, x, x)
        with OneDnnKernels():
            masked_here, _ = attention(x, x, x, attn_mask=mask, need_weights=False)
            _, weights_here = attention(x, x, x)
    # The masked case is PyTorch's own arithmetic: identical, not merely close.
    assert torch.equal(masked_here, masked)
    assert weights_here is not None and torch.equal(weights_here, weights)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (torch.nn.ConvTranspose2d(12, 4, (8, 1), (4, 1)), (1, 12, 16, 9)),
        (torch.nn.Conv2d(12, 24, 3, padding=1), (2, 12, 16, 9)),
        (torch.nn.Conv2d(4, 12, (8, 1), (4, 1), padding=(2, 0)), (1, 4, 32, 9)),
    ],
)
def test_2d_convolutions_agree_and_hand_back_channels_last(
    layer: torch.nn.Module, shape: tuple[int, ...]
) -> None:
    torch.manual_seed(3)
    x = torch.randn(*shape)
    with torch.inference_mode():
        expected = layer(x)
        with OneDnnKernels():
            got = layer(x)
            # The next convolution takes it as it is: no reorder on the way in.
            chained = layer(x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2))
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(chained, expected, atol=ATOL, rtol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last)
    # What the networks do next: split the channel axis with .view.
    split = got.view(got.shape[0], 2, -1, *got.shape[2:])
    torch.testing.assert_close(split, expected.view(split.shape), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 37])
def test_narrow_pointwise_conv1d_is_a_batched_matmul(bias: bool, rows: int) -> None:
    torch.manual_seed(5)
    layer = torch.nn.Conv1d(6, 96, 1, bias=bias)
    x = torch.randn(rows, 6, 50)
    with torch.inference_mode():
        expected = layer(x)
        with OneDnnKernels():
            got = layer(x)
            ops = ops_run(lambda: layer(x))
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)
    assert ("aten::baddbmm" if bias else "aten::bmm") in ops
    assert "aten::mkldnn_convolution" not in ops


@pytest.mark.parametrize(
    "layer",
    [
        torch.nn.Conv1d(16, 32, 1),  # wide enough for oneDNN
        torch.nn.Conv1d(6, 96, 3, padding=1),  # not pointwise
        torch.nn.Conv1d(6, 96, 1, stride=2),
        torch.nn.Conv1d(6, 96, 1, padding=1),
        torch.nn.Conv1d(6, 96, 1, groups=2),
        torch.nn.Conv1d(6, 96, 1, dilation=2),
    ],
)
def test_other_conv1d_are_left_to_onednn(layer: torch.nn.Module) -> None:
    x = torch.randn(4, layer.in_channels, 50)
    with torch.inference_mode():
        expected = layer(x)
        with OneDnnKernels():
            got = layer(x)
            ops = ops_run(lambda: layer(x))
    assert torch.equal(got, expected)
    assert "aten::baddbmm" not in ops and "aten::bmm" not in ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_group_norm_of_a_transposed_stream_keeps_the_stream_contiguous(
    dtype: torch.dtype,
) -> None:
    # demucs' MyGroupNorm: GroupNorm over the transposed (B, T, C) stream.
    torch.manual_seed(6)
    norm = torch.nn.GroupNorm(1, 32).to(dtype)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    stream = torch.randn(2, 50, 32, dtype=dtype)
    plain_input = torch.randn(2, 32, 50, dtype=dtype)
    with torch.inference_mode():
        expected = norm(stream.transpose(1, 2)).transpose(1, 2)
        plain_expected = norm(plain_input)
        with OneDnnKernels():
            got = norm(stream.transpose(1, 2)).transpose(1, 2)
            plain = norm(plain_input)
    tolerance = {"atol": ATOL, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(got, expected, **tolerance)  # type: ignore[arg-type]
    assert got.is_contiguous()  # the next residual add sees one layout
    assert not expected.is_contiguous()  # what PyTorch alone hands back
    # A contiguous input is PyTorch's own business.
    assert torch.equal(plain, plain_expected)


def test_a_convolution_called_with_keywords_is_left_to_pytorch() -> None:
    x, weight = torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3)
    with torch.inference_mode():
        expected = torch.nn.functional.conv2d(x, weight=weight)
        with OneDnnKernels():
            got = torch.nn.functional.conv2d(x, weight=weight)
    assert torch.equal(got, expected)


def test_other_dtypes_are_left_alone() -> None:
    layer = torch.nn.Linear(8, 4).double()
    x = torch.randn(3, 8, dtype=torch.float64)
    with torch.inference_mode(), OneDnnKernels():
        ops = ops_run(lambda: layer(x))
    assert ONEDNN_MATMUL not in ops


def one_job(tiny_repo: Path) -> list[Job]:
    model = load_model("htdemucs", tiny_repo)
    plan = make_plan(
        model, 44100, list(model.sources), shifts=0, overlap=0.25, segment=None,
        device=torch.device("cpu"),
    )
    pass_ = plan.passes[0]
    _, chunk, _, valid = pass_.segment_bounds(0)
    return [Job(pass_, 0, chunk, torch.randn(2, valid))]


def test_the_fast_backend_runs_onednn_in_float32(tiny_repo: Path) -> None:
    jobs = one_job(tiny_repo)
    ops = ops_run(lambda: FastCpuBackend("fp32").run(jobs))
    assert ONEDNN_MATMUL in ops and "aten::addmm" not in ops


def test_without_onednn_the_fast_backend_keeps_pytorchs_kernels(
    tiny_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = one_job(tiny_repo)
    with_onednn = FastCpuBackend("fp32").run(jobs)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    ops = ops_run(lambda: FastCpuBackend("fp32").run(jobs))
    without = FastCpuBackend("fp32").run(jobs)
    assert ONEDNN_MATMUL not in ops and "aten::addmm" in ops
    torch.testing.assert_close(without[0], with_onednn[0], atol=1e-4, rtol=1e-4)


def test_bf16_runs_a_bf16_copy_through_onednn_and_leaves_the_model_alone(
    tiny_repo: Path,
) -> None:
    # The backend runs whatever precision it is given (choose_backend is what
    # refuses bf16 on CPUs without native support), so this runs anywhere.
    jobs = one_job(tiny_repo)
    network = jobs[0].member.model
    ops = ops_run(lambda: FastCpuBackend("bf16").run(jobs))
    assert ONEDNN_MATMUL in ops and "aten::addmm" not in ops
    # One copy per network, reused; the model the runner keeps stays float32
    # for the next job.
    assert bf16_network(network) is bf16_network(network)
    assert all(p.dtype == torch.float32 for p in network.parameters())
    assert all(p.dtype == torch.bfloat16 for p in bf16_network(network).parameters())


def test_fp16_and_other_networks_keep_autocast(tiny_repo: Path) -> None:
    jobs = one_job(tiny_repo)
    ops = ops_run(lambda: FastCpuBackend("fp16").run(jobs))
    assert ONEDNN_MATMUL not in ops and "aten::addmm" in ops
    hdemucs = load_model("mdx_extra", tiny_repo).models[0]
    assert not bf16_weights_apply(hdemucs, "bf16")
    assert bf16_weights_apply(jobs[0].member.model, "bf16")
    assert not bf16_weights_apply(jobs[0].member.model, "fp32")
