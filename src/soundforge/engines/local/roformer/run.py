"""Separate one file with a RoFormer model: decode → ``RoformerStream`` → stem writers.

The same shape as the Demucs path (``inference.stream_to_files``): a first
decoding pass gives the length (the reflect padding at the end needs it), the
second streams the mix through the network chunk by chunk, and every final
region goes straight to the staged ``StemWriter``s. Progress is reported per
chunk, and a cancel takes effect between chunks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from soundforge.audio.reader import AudioReader
from soundforge.audio.writer import StemWriter, stem_filename
from soundforge.engines.local.backends import precision_context
from soundforge.engines.local.catalog import get_spec, resolve_outputs
from soundforge.engines.local.device import check_precision, resolve_device
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.roformer.loader import RoformerModel
from soundforge.engines.local.roformer.stream import RoformerStream
from soundforge.engines.local.streaming import MixFeed, RunningStats
from soundforge.errors import CancelledError

STATS_SHARE = 0.03


def separate_roformer(
    model: RoformerModel,
    request: RunRequest,
    on_progress: object,
    should_stop: object,
) -> dict[str, str]:
    from soundforge.engines.local.inference import map_outputs

    progress = on_progress  # (fraction, stage) → None
    stop = should_stop
    assert callable(progress) and callable(stop)
    spec = get_spec(request.model)
    outputs = resolve_outputs(spec, request.stems, request.two_stems)
    device = resolve_device(request.device)
    check_precision(request.precision, device)
    progress(0.0, "reading")
    length, source_frames = _measure(request, model, stop)
    model.net.to(device)
    reader = AudioReader(request.input, model.samplerate, model.audio_channels)
    info = reader.info
    out_rate = request.sample_rate or info.sample_rate
    out_frames = round(source_frames * out_rate / info.sample_rate)
    channels = 1 if info.channels == 1 else 2
    out_dir = Path(request.output_dir)
    writers: dict[str, StemWriter] = {}
    try:
        for name in outputs:
            writers[name] = StemWriter(
                out_dir / stem_filename(name, request.format),
                request.format,
                sample_rate=out_rate,
                channels=channels,
                source_rate=model.samplerate,
                source_channels=model.audio_channels,
                wav_depth=request.wav_depth,
                mp3_bitrate=request.mp3_bitrate,
            )
        zero, one = torch.tensor(0.0), torch.tensor(1.0)
        feed = MixFeed(iter(reader), length, model.audio_channels, zero, one)
        stream = RoformerStream(
            model,
            feed,
            device,
            precision=lambda: precision_context(device, request.precision),
            batch=request.batch or 1,
        )
        progress(STATS_SHARE, "separating")
        done = 0
        while not stream.finished:
            if stop():
                raise CancelledError()
            done += stream.advance()
            end = stream.ready()
            if end > stream._taken:
                estimates = stream.take(end)
                raw = feed.raw(end - estimates.shape[-1], end)
                blocks = map_outputs(list(model.sources), estimates, raw, outputs, False)
                for name, block in blocks.items():
                    writers[name].write(block.numpy().astype(np.float32, copy=False))
            feed.release(stream.needs_from())
            progress(STATS_SHARE + (1 - STATS_SHARE) * 0.99 * done / stream.units, "separating")
        feed.finish()
        written = {
            name: str(writer.finish(out_frames if writer.sample_rate == out_rate else None))
            for name, writer in writers.items()
        }
        progress(1.0, "writing")
        return written
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise


def _measure(request: RunRequest, model: RoformerModel, should_stop: object) -> tuple[int, int]:
    """First pass: the length at the model's rate and in the file's own frames."""
    assert callable(should_stop)
    reader = AudioReader(request.input, model.samplerate, model.audio_channels)
    stats = RunningStats()
    length = 0
    for block in reader:
        if should_stop():
            raise CancelledError()
        stats.add(block)
        length += block.shape[1]
    return length, reader.frames
