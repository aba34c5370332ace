"""The GPU path on a real CUDA GPU (``bench/gpu_check.sh`` runs these there).

Skipped on machines without CUDA, where ``test_devices.py`` covers the same
code through a virtual device. Bars from DESIGN.md: fp32 ≥ 60 dB against
``apply_model`` on the same GPU (cuDNN runs TF32 convolutions there), bf16 and
fp16 ≥ 40 dB against it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch

from soundforge.engines.local.inference import separate_file
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.request import RunRequest
from tests.local.equivalence_support import (
    as_written,
    read_stem,
    reference_estimates,
    sdiff_db,
)
from tests.support.audio import write_audio

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs it)"
)

GPU_FP32_DB = 60.0
REDUCED_DB = 40.0


def ours(model: Any, name: str, source: Path, out: Path, notices: list[str] | None = None,
         **options: Any) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    request = RunRequest(id="t", input=str(source), output_dir=str(out), model=name,
                         wav_depth="float", shifts=0, **options)
    paths = separate_file(model, request, lambda *_: None, lambda: False,
                          on_notice=notices.append if notices is not None else None)
    return {stem: read_stem(path) for stem, path in paths.items()}


def gpu_reference(model: Any, source: Path, **options: Any) -> dict[str, Any]:
    """apply_model on cuda:0, as the float WAV writer would write it."""
    _, estimates = reference_estimates(model, source, shifts=0, device="cuda:0", **options)
    return {name: as_written(tensor, 2) for name, tensor in estimates.items()}


@pytest.mark.parametrize("name", ["htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"])
def test_fp32_on_the_gpu_matches_apply_model_on_the_gpu(
    tiny_repo: Path, tmp_path: Path, name: str
) -> None:
    model = load_model(name, tiny_repo)
    source = write_audio(tmp_path / "in.wav", seconds=7.3)
    segment = 1.0 if name == "mdx_extra" else None
    reference = gpu_reference(model, source, segment=segment)
    result = ours(model, name, source, tmp_path / "out", device="cuda:0", segment=segment)
    assert next(model.parameters()).is_cuda
    assert sdiff_db(result, reference) >= GPU_FP32_DB


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", ["htdemucs", "mdx_extra"])
def test_reduced_precision_on_the_gpu_keeps_the_quality_bar(
    tiny_repo: Path, tmp_path: Path, name: str, precision: str
) -> None:
    model = load_model(name, tiny_repo)
    source = write_audio(tmp_path / "in.wav", seconds=5.0)
    reference = gpu_reference(model, source)
    result = ours(model, name, source, tmp_path / "out", device="cuda:0", precision=precision)
    assert sdiff_db(result, reference) >= REDUCED_DB


def test_a_real_out_of_memory_is_retried_with_smaller_batches(tmp_path: Path) -> None:
    """Full-size htdemucs, 64 segments asked per call, the process limited to
    3 GiB: the first calls really run out of memory; the engine halves the batch
    until it fits, and the stems are still those of one segment per call."""
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    net = HTDemucs(sources=["drums", "bass", "other", "vocals"], bottom_channels=512,
                   segment=Fraction(39, 5))
    model = BagOfModels([net]).eval()
    source = write_audio(tmp_path / "in.wav", seconds=60.0)
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(
        3 * 2**30 / torch.cuda.get_device_properties(0).total_memory, 0
    )
    notices: list[str] = []
    try:
        result = ours(model, "htdemucs", source, tmp_path / "big", notices, device="cuda:0",
                      batch=64)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    assert notices and notices[0].startswith("Out of cuda:0 memory with")
    single = ours(model, "htdemucs", source, tmp_path / "one", device="cuda:0", batch=1)
    assert sdiff_db(result, single) >= GPU_FP32_DB
