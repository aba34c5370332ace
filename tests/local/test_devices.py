"""The GPU path, proven on a CPU-only machine.

``tests/support/virtual_device.py`` gives the test a second device: tensors
moved to ``cuda`` stay in host memory but are tagged, report ``cuda:0``, and
any operation that mixes them with untagged tensors fails as it does on a real
GPU. With ``torch.cuda.is_available`` reporting one GPU, the whole shipped
path (``separate_file``, what the runner calls) runs "on the GPU": a network
left on the CPU, an input not moved, or a device tensor handed to the stem
writer fails here exactly as it would on an NVIDIA card.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from soundforge.engines.local.inference import separate_file
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.request import RunRequest
from soundforge.errors import OutOfMemoryError
from tests.local.equivalence_support import MIN_SDIFF_DB, read_stem, sdiff_db
from tests.support.audio import write_audio
from tests.support.virtual_device import VirtualCuda, on_virtual

FREE_BYTES = 8 * 2**30


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualCuda]:
    """CUDA reports one GPU; the virtual device stands in for it."""
    peak = {"bytes": 0}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(
        torch.cuda, "mem_get_info", lambda device=None: (FREE_BYTES, 2 * FREE_BYTES)
    )
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    # One segment of a tiny model "takes" 1 GiB: 8 GiB free × 0.7 → 6 segments per call.
    peak["bytes"] = 2**30
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: peak["bytes"])
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    with warnings.catch_warnings():
        # The CPU build has no cuDNN; HDemucs' LSTM asks for it on "CUDA" tensors.
        warnings.simplefilter("ignore", UserWarning)
        with VirtualCuda() as device:
            yield device


def request_for(name: str, source: Path, out: Path, **options: Any) -> RunRequest:
    out.mkdir(parents=True, exist_ok=True)
    return RunRequest(
        id="t", input=str(source), output_dir=str(out), model=name, wav_depth="float",
        shifts=0, **options,
    )


def stems_of(paths: dict[str, str]) -> dict[str, Any]:
    return {name: read_stem(path) for name, path in paths.items()}


def run(model: Any, request: RunRequest, notices: list[str] | None = None) -> dict[str, str]:
    return separate_file(
        model, request, lambda *_: None, lambda: False,
        on_notice=(notices.append if notices is not None else None),
    )


def count_calls(model: Any) -> list[int]:
    """Batch sizes of every forward call of every network of ``model``."""
    sizes: list[int] = []
    for net in getattr(model, "models", [model]):
        net.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    return sizes


@pytest.mark.parametrize("name", ["htdemucs", "mdx_extra"])
def test_a_gpu_run_moves_the_networks_and_inputs_and_matches_the_cpu(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda, name: str
) -> None:
    # Enough segments for a single-segment call then batches: four of htdemucs'
    # 2 s segments, five of mdx_extra's 1 s ones.
    source = write_audio(tmp_path / "in.wav", seconds=5.0 if name == "htdemucs" else 3.5)
    cpu_model = load_model(name, tiny_repo)
    gpu_model = load_model(name, tiny_repo)
    segment = 1.0 if name == "mdx_extra" else None  # several segments per network
    reference = stems_of(run(cpu_model, request_for(name, source, tmp_path / "cpu",
                                                    device="cpu", segment=segment)))
    sizes = count_calls(gpu_model)
    ours = stems_of(run(gpu_model, request_for(name, source, tmp_path / "gpu",
                                               device="cuda", segment=segment)))
    assert all(on_virtual(p) for p in gpu_model.parameters()), "networks left on the CPU"
    assert sdiff_db(ours, reference) >= MIN_SDIFF_DB
    # Inputs went through pinned memory, one copy per call; outputs came home once
    # per segment, and each network's overlap window once per run, not per segment.
    assert one_gpu.pinned == len(sizes)
    assert one_gpu.to_host == sum(sizes) + len(gpu_model.models)
    # Auto batching: after one single-segment call the rest is batched.
    assert sizes[0] == 1 and max(sizes) > 1


def test_the_official_code_path_fails_on_a_network_left_on_the_cpu(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    """The check the GPU tests rely on: an unmoved network cannot pass unnoticed."""
    model = load_model("htdemucs", tiny_repo)
    window = torch.zeros(1, 2, 2 * 44100).to("cuda")
    with pytest.raises(RuntimeError, match="same device"):
        model.models[0](window)


def test_pruned_networks_of_a_bag_stay_where_they_are(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    model = load_model("htdemucs_ft", tiny_repo)
    source = write_audio(tmp_path / "in.wav", seconds=1.0)
    run(model, request_for("htdemucs_ft", source, tmp_path / "out", device="cuda",
                           stems=("vocals",)))
    placed = [all(on_virtual(p) for p in net.parameters()) for net in model.models]
    # htdemucs_ft: one specialist network per source; only the vocals one ran.
    vocals = list(model.sources).index("vocals")
    assert placed == [index == vocals for index in range(len(model.models))]


def test_an_explicit_batch_stacks_segments_of_every_member(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    model = load_model("htdemucs_ft", tiny_repo)
    source = write_audio(tmp_path / "in.wav", seconds=4.5)  # three 2 s segments: one batch
    reference = stems_of(run(load_model("htdemucs_ft", tiny_repo),
                             request_for("htdemucs_ft", source, tmp_path / "cpu", device="cpu")))
    sizes = count_calls(model)
    ours = stems_of(run(model, request_for("htdemucs_ft", source, tmp_path / "gpu",
                                           device="cuda", batch=3)))
    assert max(sizes) == 3 and all(size <= 3 for size in sizes)
    assert sdiff_db(ours, reference) >= MIN_SDIFF_DB


def oom_when(model: Any, condition: Any) -> None:
    def hook(_module: Any, args: tuple[torch.Tensor, ...]) -> None:
        if condition(args[0]):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")

    for net in model.models:
        net.register_forward_pre_hook(hook)


def test_out_of_memory_retries_with_smaller_batches_then_says_so(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    model = load_model("htdemucs", tiny_repo)
    source = write_audio(tmp_path / "in.wav", seconds=6.0)
    reference = stems_of(run(load_model("htdemucs", tiny_repo),
                             request_for("htdemucs", source, tmp_path / "cpu", device="cpu")))
    oom_when(model, lambda window: window.shape[0] > 1)
    notices: list[str] = []
    ours = stems_of(run(model, request_for("htdemucs", source, tmp_path / "gpu",
                                           device="cuda", batch=4), notices))
    assert sdiff_db(ours, reference) >= MIN_SDIFF_DB
    assert notices == ["Out of cuda memory with 4 segments per call: retrying with 2.",
                       "Out of cuda memory with 2 segments per call: retrying with 1."]


def test_out_of_memory_on_one_segment_retries_with_shorter_segments(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    model = load_model("mdx_extra", tiny_repo)  # HDemucs: any segment length is allowed
    source = write_audio(tmp_path / "in.wav", seconds=4.0)
    oom_when(model, lambda window: window.shape[-1] > 44100 * 1.5)
    notices: list[str] = []
    out = run(model, request_for("mdx_extra", source, tmp_path / "gpu", device="cuda",
                                 segment=2.0), notices)
    assert set(out) == set(model.sources)
    assert read_stem(out["vocals"]).shape[-1] == 4 * 44100
    assert notices == ["Out of cuda memory with 2 s segments one at a time: "
                       "starting again with 1 s segments."]


def test_out_of_memory_that_no_retry_fixes_is_its_own_error(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    model = load_model("htdemucs", tiny_repo)
    source = write_audio(tmp_path / "in.wav", seconds=1.0)
    oom_when(model, lambda window: True)
    out_dir = tmp_path / "gpu"
    with pytest.raises(OutOfMemoryError) as caught:
        run(model, request_for("htdemucs", source, out_dir, device="cuda"))
    assert caught.value.code == "out_of_memory"
    assert "--precision bf16" in caught.value.message and "--device cpu" in caught.value.message


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_a_gpu_runs_under_cuda_autocast(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda, precision: str
) -> None:
    model = load_model("htdemucs", tiny_repo)
    seen: list[tuple[bool, torch.dtype]] = []
    for net in model.models:
        net.register_forward_pre_hook(lambda *_: seen.append(
            (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"))))
    source = write_audio(tmp_path / "in.wav", seconds=1.0)
    out = run(model, request_for("htdemucs", source, tmp_path / "gpu", device="cuda",
                                 precision=precision))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert seen and all(state == (True, dtype) for state in seen)
    assert read_stem(out["drums"]).dtype.kind == "f"


def test_fp32_on_a_gpu_does_not_autocast(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    model = load_model("htdemucs", tiny_repo)
    seen: list[bool] = []
    for net in model.models:
        net.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cuda")))
    source = write_audio(tmp_path / "in.wav", seconds=1.0)
    run(model, request_for("htdemucs", source, tmp_path / "gpu", device="cuda"))
    assert seen and not any(seen)
