"""Reduced precision on the CPU, and the GPU, against ``apply_model`` in the same run.

Run with ``make bench`` (after ``separation.py``) or alone:
``python bench/devices.py [--quick]``. Full-size random-weight htdemucs (41.5 M
parameters), 30 s of stereo audio (``--quick``: a small model, 10 s),
``shifts=1``, the same seed on every side. Each case is its own process.

* CPU, where the processor runs bfloat16 natively (AMX or AVX512-BF16): our
  fp32 path and our bf16 path against ``apply_model`` in fp32, with the SDiff
  of each against that reference (fp32 is held to 80 dB, bf16 to 40 dB).
* CUDA, when a GPU is present: ``apply_model`` on the GPU (fp32; cuDNN uses
  TF32 there) against ours in fp32, bf16 and fp16 with automatic batching:
  seconds per second of audio, times real time, peak GPU memory, SDiff
  against the GPU reference (fp32 held to 60 dB, bf16/fp16 to 40 dB).

Targets (issue #10), printed as met or not: CPU bf16 ≥ 3× against fp32
``apply_model``; on an H200-class GPU fp32 ≥ 2×, bf16 ≥ 3× and ≥ 150× real
time in bf16.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from separation import (
    SEED,
    build_full_repo,
    machine,
    run_worker,
    sdiff_db,
    write_song,
)
from soundforge.engines.local.device import cpu_runs_bf16

BARS = {"fp32": 80.0, "bf16": 40.0, "fp16": 40.0}
GPU_FP32_BAR = 60.0  # the GPU reference itself runs TF32 convolutions


def cuda_devices() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def row(label: str, seconds: float, audio: float, ref_seconds: float, sdiff: float, bar: float,
        gpu_mb: float | None) -> list[str]:
    return [
        label,
        f"{seconds / audio:.4f}",
        f"{audio / seconds:.1f}×",
        f"{ref_seconds / seconds:.2f}×",
        "–" if gpu_mb is None else f"{gpu_mb:.0f}",
        f"{sdiff:.1f}",
        "yes" if sdiff >= bar else f"NO (< {bar:g})",
    ]


def bench(quick: bool, gpu_only: bool = False) -> None:
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="soundforge-bench-devices-"))
    try:
        _bench(work, quick, gpu_only)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nwhole device benchmark: {time.perf_counter() - started:.0f} s")


def _bench(work: Path, quick: bool, gpu_only: bool) -> None:
    print(f"Machine: {machine()}", flush=True)
    gpus = cuda_devices()
    print(f"GPUs: {', '.join(gpus) if gpus else 'none'}", flush=True)
    repo = work / "repo"
    build_full_repo(repo, quick)
    audio = 10.0 if quick else 30.0
    song = write_song(work / "song.wav", audio)
    common: dict[str, Any] = {"model": "htdemucs", "repo": repo, "input": song, "shifts": 1,
                              "overlap": 0.25, "seed": SEED}
    rows: list[list[str]] = []
    targets: list[str] = []

    def case(label: str, reference: dict[str, Any], bar: float, **options: Any
             ) -> tuple[float, float]:
        """(speed-up against the reference, times real time)."""
        ours = run_worker("ours", out=work / f"o-{len(rows)}", **common, **options)
        sdiff = sdiff_db(ours["stems"], reference["stems"])
        rows.append(row(label, ours["seconds"], audio, reference["seconds"], sdiff, bar,
                        ours.get("gpu_peak_mb")))
        print("  " + " | ".join(rows[-1]), flush=True)
        return float(reference["seconds"] / ours["seconds"]), audio / float(ours["seconds"])

    if not gpu_only:
        print("\nCPU (s per s of audio; × real time; speed-up against apply_model fp32; "
              "SDiff dB against it):", flush=True)
        cpu_ref = run_worker("ref", out=work / "r-cpu", device="cpu", **common)
        rows.append(row("CPU apply_model fp32 (reference)", cpu_ref["seconds"], audio,
                        cpu_ref["seconds"], float("inf"), 0, None))
        case("CPU SoundForge fp32", cpu_ref, BARS["fp32"], device="cpu")
        if cpu_runs_bf16():
            ratio, _ = case("CPU SoundForge bf16", cpu_ref, BARS["bf16"], device="cpu",
                            precision="bf16")
            targets.append(f"CPU bf16 ≥ 3× apply_model fp32: {ratio:.2f}× "
                           f"({'met' if ratio >= 3 else 'NOT met'})")
        else:
            print("  CPU bf16: not run, this processor has neither AMX nor AVX512-BF16",
                  flush=True)

    if gpus:
        print(f"\nGPU {gpus[0]} (cuda:0):", flush=True)
        gpu_ref = run_worker("ref", out=work / "r-gpu", device="cuda:0", **common)
        rows.append(row("GPU apply_model fp32 (reference)", gpu_ref["seconds"], audio,
                        gpu_ref["seconds"], float("inf"), 0, gpu_ref.get("gpu_peak_mb")))
        fp32, _ = case("GPU SoundForge fp32, batched", gpu_ref, GPU_FP32_BAR, device="cuda:0")
        bf16, realtime = case("GPU SoundForge bf16, batched", gpu_ref, BARS["bf16"],
                              device="cuda:0", precision="bf16")
        case("GPU SoundForge fp16, batched", gpu_ref, BARS["fp16"], device="cuda:0",
             precision="fp16")
        targets += [
            f"GPU fp32 ≥ 2× apply_model: {fp32:.2f}× ({'met' if fp32 >= 2 else 'NOT met'})",
            f"GPU bf16 ≥ 3× apply_model: {bf16:.2f}× ({'met' if bf16 >= 3 else 'NOT met'})",
            f"GPU bf16 ≥ 150× real time: {realtime:.0f}× "
            f"({'met' if realtime >= 150 else 'NOT met'})",
        ]
    else:
        print("\nGPU: none here; the GPU rows need a CUDA machine (bench/gpu_check.sh).",
              flush=True)

    print("\n## Devices and precision\n")
    print("| case | s/s | × real time | speed-up | peak GPU MiB | SDiff dB | meets bar |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for line in rows:
        print("| " + " | ".join(line) + " |")
    if targets:
        print("\nTargets: " + "; ".join(targets) + ".")
    if quick:
        print("\n(--quick: a small model on a short input; the ratios check the script, "
              "not the targets.)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small model, a short input")
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU rows")
    args = parser.parse_args()
    bench(args.quick, args.gpu_only)


if __name__ == "__main__":
    main()
