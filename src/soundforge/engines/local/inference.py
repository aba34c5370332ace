"""Run a loaded Demucs model on one file and write its stems.

This is the reference path: the official ``demucs.apply.apply_model`` on the
whole track, with the official CLI's normalisation around it. It is what the
fast path (``fast.py``) must match.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundforge.audio.reader import AudioReader
from soundforge.audio.writer import StemWriter, stem_filename
from soundforge.engines.local.catalog import get_spec, resolve_outputs
from soundforge.engines.local.device import resolve_device
from soundforge.engines.local.request import RunRequest
from soundforge.errors import CancelledError

# (fraction done 0..1, stage) → None
Progress = Callable[[float, str], None]
ShouldStop = Callable[[], bool]

# Progress split between separating and writing the stems.
SEPARATION_SHARE = 0.95


class _Abort(BaseException):
    """Raised from apply_model's callback to stop it. A BaseException so that
    apply_model's own pool clean-up (which catches BaseException) runs."""


def normalise(mix: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """The official CLI's input normalisation; silence is left as it is
    (the official code would divide by a zero standard deviation)."""
    ref = mix.mean(0)
    mean = float(ref.mean())
    std = float(ref.std()) if ref.numel() > 1 else 0.0
    if not np.isfinite(std) or std < 1e-8:
        std = 1.0
    return (mix - mean) / std, mean, std


def output_stems(
    sources: list[str], estimates: torch.Tensor, mix: torch.Tensor, outputs: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """Map model sources to the requested output files.

    ``no_X`` is the sum of every other source, as the official CLI computes it.
    """
    by_name = dict(zip(sources, estimates, strict=True))
    stems: dict[str, torch.Tensor] = {}
    for name in outputs:
        if name.startswith("no_"):
            kept = name[3:]
            stems[name] = sum((t for s, t in by_name.items() if s != kept), torch.zeros_like(mix))
        else:
            stems[name] = by_name[name]
    return stems


def count_segments(model: Any, length: int, request: RunRequest) -> int:
    """How many segment evaluations apply_model will make (for progress)."""
    models = list(model.models) if hasattr(model, "models") else [model]
    total = 0
    for sub in models:
        segment = request.segment or float(sub.segment)
        segment_length = int(sub.samplerate * segment)
        stride = max(1, int((1 - request.overlap) * segment_length))
        padded = length + (int(0.5 * sub.samplerate) if request.shifts else 0)
        total += max(1, request.shifts) * max(1, -(-padded // stride))
    return total


def separate_file(
    model: Any, request: RunRequest, on_progress: Progress, should_stop: ShouldStop
) -> dict[str, str]:
    """Separate ``request.input`` into ``request.output_dir``; returns stem → path."""
    from demucs.apply import apply_model

    spec = get_spec(request.model)
    outputs = resolve_outputs(spec, request.stems, request.two_stems)
    device = resolve_device(request.device)
    reader = AudioReader(request.input, model.samplerate, model.audio_channels)
    mix = torch.from_numpy(np.concatenate(list(reader), axis=1))
    info = reader.info
    normalised, mean, std = normalise(mix)

    total = count_segments(model, mix.shape[-1], request)
    done = 0

    def callback(state: dict[str, Any]) -> None:
        nonlocal done
        if should_stop():
            raise _Abort()
        if state.get("state") == "end":
            done += 1
            on_progress(SEPARATION_SHARE * min(done / total, 1.0), "separating")

    if request.seed is not None:
        random.seed(request.seed)
    try:
        with torch.no_grad():
            estimates = apply_model(
                model,
                normalised[None],
                shifts=request.shifts,
                overlap=request.overlap,
                segment=request.segment,
                device=device,
                callback=callback,
                progress=False,
            )[0]
    except _Abort:
        raise CancelledError() from None
    estimates = estimates * std + mean
    stems = output_stems(list(model.sources), estimates, mix, outputs)
    return write_stems(
        stems, request, info.sample_rate, info.channels, reader.frames, model.samplerate,
        on_progress, should_stop,
    )


def write_stems(
    stems: dict[str, torch.Tensor],
    request: RunRequest,
    input_rate: int,
    input_channels: int,
    input_frames: int,
    model_rate: int,
    on_progress: Progress,
    should_stop: ShouldStop,
) -> dict[str, str]:
    out_rate = request.sample_rate or input_rate
    out_frames = round(input_frames * out_rate / input_rate)
    channels = 1 if input_channels == 1 else 2
    out_dir = Path(request.output_dir)
    written: dict[str, str] = {}
    for index, (name, tensor) in enumerate(stems.items()):
        if should_stop():
            raise CancelledError()
        data = tensor.detach().cpu().numpy().astype(np.float32, copy=False)
        writer = StemWriter(
            out_dir / stem_filename(name, request.format),
            request.format,
            sample_rate=out_rate,
            channels=channels,
            source_rate=model_rate,
            source_channels=data.shape[0],
            wav_depth=request.wav_depth,
            mp3_bitrate=request.mp3_bitrate,
        )
        try:
            step = 1 << 18
            for start in range(0, data.shape[1], step):
                writer.write(data[:, start : start + step])
            path = writer.finish(out_frames if writer.sample_rate == out_rate else None)
        except BaseException:
            writer.abort()
            raise
        written[name] = str(path)
        on_progress(SEPARATION_SHARE + (1 - SEPARATION_SHARE) * (index + 1) / len(stems),
                    "writing")
    return written
