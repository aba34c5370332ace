"""Run a loaded model on one file and write its stems.

The file is read twice: a first decoding pass measures the mix's mean and
standard deviation (the official CLI normalises by them, over the whole
track) and its length; the second pass streams the audio through the model
segment by segment (``streaming``) straight into the stem writers. What a
model family contributes is a ``Separation``: the streams that evaluate it
over the shared mix and how their estimates combine. Decoding
is cheap next to inference, and nothing proportional to the track's length is
ever held in memory.

The arithmetic is ``demucs.apply.apply_model``'s. Which code evaluates the
network on each segment is chosen by ``backends.choose_backend``, which also
moves the networks that run to the compute device: the official modules (the
reference, and always on a GPU, where segments are batched), or the faster CPU
path where its equivalence with the reference is established.

Out of GPU memory, the backend first retries with fewer segments per call; if
even one segment does not fit, the stream starts again with shorter segments,
down to ``MIN_RETRY_SEGMENT`` seconds, and each step is announced (``notice``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from soundforge.audio.reader import AudioReader
from soundforge.audio.writer import StemWriter, stem_filename
from soundforge.engines.base import NoticeCallback as Notice
from soundforge.engines.base import Progress, ShouldStop
from soundforge.engines.local.catalog import check_chunking, get_spec, resolve_outputs
from soundforge.engines.local.device import resolve_device
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.streaming import (
    Combine,
    DemucsStream,
    MixFeed,
    MixStats,
    Plan,
    RunningStats,
    StemStream,
    make_plan,
    only,
    run_streams,
)
from soundforge.errors import CancelledError, OutOfMemoryError

if TYPE_CHECKING:
    from soundforge.engines.local.backends import SegmentBackend

log = logging.getLogger(__name__)


# Shorter segments than this lose too much context to be worth a retry.
MIN_RETRY_SEGMENT = 1.0

# Progress given to the first (measuring) decoding pass; separating and writing
# share the rest, since stems are written while segments are computed.
STATS_SHARE = 0.03


@dataclass(frozen=True)
class Separation:
    """What the streaming writer needs from a model family for one run."""

    samplerate: int
    audio_channels: int
    sources: tuple[str, ...]  # the order of the combined estimates
    # Some sources were not computed: ``no_X`` is then written as mix − X.
    pruned: bool
    # The streams that evaluate the model(s) over the shared mix …
    streams: Callable[[MixFeed], list[StemStream]]
    # … and how their estimates become the ``sources``.
    combine: Combine = only


def demucs_separation(
    model: Any, plan: Plan, backend: SegmentBackend, mean: torch.Tensor, std: torch.Tensor
) -> Separation:
    """A Demucs model (or bag) evaluated as ``plan`` says, by ``backend``."""
    sources = tuple(model.sources)
    return Separation(
        model.samplerate,
        model.audio_channels,
        sources,
        plan.pruned,
        lambda feed: [DemucsStream(plan, feed, backend, sources, mean, std)],
    )


def measure(
    request: RunRequest, samplerate: int, channels: int, should_stop: Callable[[], bool]
) -> MixStats:
    """First pass: mean, standard deviation and length of the mix at the model's rate."""
    reader = AudioReader(request.input, samplerate, channels)
    stats = RunningStats()
    length = 0
    for block in reader:
        if should_stop():
            raise CancelledError()
        stats.add(block)
        length += block.shape[1]
    mean, std = stats.result()
    return MixStats(mean, std, length, reader.frames)


def needed_sources(outputs: tuple[str, ...]) -> list[str]:
    """Sources whose estimates the requested outputs read, before bag pruning.

    ``no_X`` asks only for X here: when the bag can be pruned it is written as
    mix − X; when every member runs anyway it is the sum of the other sources,
    as the official CLI writes it (see ``map_outputs``).
    """
    names: list[str] = []
    for name in outputs:
        source = name[3:] if name.startswith("no_") else name
        if source not in names:
            names.append(source)
    return names


def map_outputs(
    sources: list[str],
    estimates: torch.Tensor,
    raw: torch.Tensor,
    outputs: tuple[str, ...],
    pruned: bool,
) -> dict[str, torch.Tensor]:
    """One block of every requested output file."""
    by_name = dict(zip(sources, estimates, strict=True))
    stems: dict[str, torch.Tensor] = {}
    for name in outputs:
        if not name.startswith("no_"):
            stems[name] = by_name[name]
            continue
        kept = name[3:]
        if pruned:
            # The other sources' networks were not run: what is left of the mix.
            stems[name] = raw - by_name[kept]
        else:
            total = torch.zeros_like(raw)
            for source, tensor in by_name.items():
                if source != kept:
                    total += tensor
            stems[name] = total
    return stems


def separate_file(
    model: Any,
    request: RunRequest,
    on_progress: Progress,
    should_stop: ShouldStop,
    on_notice: Notice | None = None,
    backend: SegmentBackend | None = None,
) -> dict[str, str]:
    """Separate ``request.input`` into ``request.output_dir``; returns stem → path.

    ``backend`` replaces the one ``choose_backend`` would pick (tests compare
    backends through this same path).
    """
    from soundforge.engines.local.backends import choose_backend

    notice = on_notice or (lambda text: log.warning("%s", text))
    spec = get_spec(request.model)
    outputs = resolve_outputs(spec, request.stems, request.two_stems)
    device = resolve_device(request.device)
    on_progress(0.0, "reading")
    if spec.is_roformer:  # its own chunking (roformer/), not apply_model's
        return _separate_roformer(
            model, request, outputs, device, on_progress, should_stop, notice
        )
    if request.seed is not None:
        # The shift offsets come from `random`, as in the official package.
        random.seed(request.seed)
    stats = measure(request, model.samplerate, model.audio_channels, should_stop)
    mean, std = stats.tensors()
    segment = request.segment
    draws = random.getstate()
    while True:
        random.setstate(draws)  # a retry draws the same shift offsets
        plan = make_plan(
            model,
            stats.length,
            needed_sources(outputs),
            shifts=request.shifts,
            overlap=request.overlap,
            segment=segment,
            device=device,
        )
        if plan.pruned:
            log.info(
                "running %d of %d networks of %s for %s",
                len(plan.active_members),
                len(plan.members),
                request.model,
                ", ".join(outputs),
            )
        chosen = backend or choose_backend(model, plan, device, request, notice)
        on_progress(STATS_SHARE, "separating")
        try:
            separation = demucs_separation(model, plan, chosen, mean, std)
            return stream_to_files(request, outputs, stats, separation, on_progress, should_stop)
        except OutOfMemoryError as exc:
            current = segment if segment is not None else default_segment(plan)
            segment = shorter_segment(exc, current, device, notice, "a smaller model", "")


def _separate_roformer(
    model: Any,
    request: RunRequest,
    outputs: tuple[str, ...],
    device: torch.device,
    on_progress: Progress,
    should_stop: ShouldStop,
    notice: Notice,
) -> dict[str, str]:
    """A RoFormer model: its own chunking (``roformer/stream.py``) on the raw,
    un-normalised mix, so the feed's mean and standard deviation stay 0 and 1.

    Chunks are independent and of one length, so ``--batch N`` stacks N per
    network call; without it, one on the CPU, and on CUDA as many as the free
    memory holds after measuring the first call.
    """
    from soundforge.engines.local.backends import precision_context
    from soundforge.engines.local.device import check_precision
    from soundforge.engines.local.roformer.stream import RoformerStream

    check_chunking(get_spec(request.model), request.shifts, request.overlap, request.segment)
    check_precision(request.precision, device)
    stats = measure(request, model.samplerate, model.audio_channels, should_stop)
    raw_stats = MixStats(0.0, 1.0, stats.length, stats.source_frames)
    model.net.to(device)
    separation = Separation(
        model.samplerate,
        model.audio_channels,
        tuple(model.sources),
        False,
        lambda feed: [
            RoformerStream(
                model,
                feed,
                device,
                precision=lambda: precision_context(device, request.precision),
                batch=request.batch,
                notice=notice,
            )
        ],
    )
    on_progress(STATS_SHARE, "separating")
    return stream_to_files(request, outputs, raw_stats, separation, on_progress, should_stop)


def shorter_segment(
    exc: OutOfMemoryError,
    current: float,
    device: torch.device,
    notice: Notice,
    smaller: str,
    for_what: str,
) -> float:
    """After one segment at a time ran out of memory: half the segment, said
    in a notice, or the final error when that would be under a second.
    ``smaller``: what else to try ("a smaller model"); ``for_what``: whose
    segments shrink, appended to the notice."""
    shorter = current / 2
    if shorter < MIN_RETRY_SEGMENT:
        raise OutOfMemoryError(
            f"{exc.message} Even {current:g} s segments one at a time do not fit: "
            f"free the GPU of other programs, try --precision bf16 (or fp16), {smaller}, "
            "or --device cpu."
        ) from None
    notice(
        f"Out of {device} memory with {current:g} s segments one at a time: "
        f"starting again with {shorter:g} s segments{for_what}."
    )
    return shorter


def default_segment(plan: Plan) -> float:
    """The segment length the plan used, in seconds (the shortest of a bag's)."""
    return min(
        member.segment_length / member.model.samplerate for member in plan.active_members
    )


def stream_to_files(
    request: RunRequest,
    outputs: tuple[str, ...],
    stats: MixStats,
    separation: Separation,
    on_progress: Progress,
    should_stop: ShouldStop,
) -> dict[str, str]:
    """The second decoding pass: stream the mix through ``separation`` into the
    stem writers (staged: nothing appears under its final name until it is whole)."""
    reader = AudioReader(request.input, separation.samplerate, separation.audio_channels)
    info = reader.info
    out_rate = request.sample_rate or info.sample_rate
    out_frames = round(stats.source_frames * out_rate / info.sample_rate)
    channels = 1 if info.channels == 1 else 2
    out_dir = Path(request.output_dir)
    writers: dict[str, StemWriter] = {}
    sources = list(separation.sources)
    mean, std = stats.tensors()
    try:
        for name in outputs:
            writers[name] = StemWriter(
                out_dir / stem_filename(name, request.format),
                request.format,
                sample_rate=out_rate,
                channels=channels,
                source_rate=separation.samplerate,
                source_channels=separation.audio_channels,
                wav_depth=request.wav_depth,
                mp3_bitrate=request.mp3_bitrate,
            )
        feed = MixFeed(iter(reader), stats.length, separation.audio_channels, mean, std)

        def emit(estimates: torch.Tensor, raw: torch.Tensor) -> None:
            blocks = map_outputs(sources, estimates, raw, outputs, separation.pruned)
            for name, block in blocks.items():
                writers[name].write(block.numpy().astype(np.float32, copy=False))

        def on_unit(done: int, total: int) -> None:
            on_progress(STATS_SHARE + (1 - STATS_SHARE) * 0.99 * done / total, "separating")

        streams = separation.streams(feed)
        run_streams(streams, feed, separation.combine, emit, on_unit, should_stop)
        written: dict[str, str] = {}
        for name, writer in writers.items():
            written[name] = str(
                writer.finish(out_frames if writer.sample_rate == out_rate else None)
            )
        on_progress(1.0, "writing")
        return written
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
