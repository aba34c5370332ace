"""Separate one file with an ensemble: one decoding pass, one streaming pass.

Each member that gives a requested stem is evaluated as it would be alone
(the same plan, backend, device and precision) as one stream over the shared
``MixFeed``; ``EnsembleStream`` combines them, and ``stream_to_files`` writes
the result through the same staged writers as a single model. ``no_X`` is
the mix minus the ensemble's ``X``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from soundforge.engines.local.catalog import get_spec
from soundforge.engines.local.device import check_precision, resolve_device
from soundforge.engines.local.ensemble.spec import (
    EnsembleSpec,
    ensemble_outputs,
    ensemble_rate_message,
    parse_ensemble,
)
from soundforge.engines.local.ensemble.stream import EnsembleStream, MemberStream
from soundforge.engines.local.inference import (
    STATS_SHARE,
    Notice,
    Progress,
    Separation,
    ShouldStop,
    default_segment,
    measure,
    needed_sources,
    shorter_segment,
    stream_to_files,
)
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.streaming import (
    DemucsStream,
    MixFeed,
    MixStats,
    Plan,
    StemStream,
    make_plan,
)
from soundforge.errors import EngineError, InvalidOptionError, OutOfMemoryError

log = logging.getLogger(__name__)


def members_to_load(request: RunRequest) -> dict[str, tuple[str, ...]]:
    """member model → the sources it must give for this request; the models
    not listed are neither loaded nor run."""
    spec = parse_ensemble(request.model)
    return spec.needs(ensemble_outputs(spec, request.stems, request.two_stems))


def check_loaded(spec: EnsembleSpec, models: Mapping[str, Any]) -> tuple[int, int]:
    """The members' common sample rate and channel count, from the loaded
    models (whatever the catalogue says): one feed must suit them all."""
    rates = {name: int(model.samplerate) for name, model in models.items()}
    if len(set(rates.values())) > 1:
        raise InvalidOptionError(ensemble_rate_message(spec.name, rates))
    channels = {name: int(model.audio_channels) for name, model in models.items()}
    if len(set(channels.values())) > 1:
        listed = ", ".join(f"{name} {count}" for name, count in channels.items())
        raise InvalidOptionError(
            f"The models of ensemble {spec.name} take different channel counts ({listed}); "
            "combine models that hear the mix the same way."
        )
    return next(iter(rates.values())), next(iter(channels.values()))


@dataclass(frozen=True)
class MemberRun:
    """One member, ready to stream: how to build its stream over the feed, and
    (Demucs) its plan, whose segment an out-of-memory retry shortens."""

    model: str
    stream: Callable[[MixFeed], StemStream]
    plan: Plan | None = None


def separate_ensemble(
    models: Mapping[str, Any],
    request: RunRequest,
    on_progress: Progress,
    should_stop: ShouldStop,
    on_notice: Notice | None = None,
) -> dict[str, str]:
    """Separate ``request.input`` with the ensemble ``request.model``, whose
    needed members (``members_to_load``) are loaded in ``models``."""
    spec = parse_ensemble(request.model)
    outputs = ensemble_outputs(spec, request.stems, request.two_stems)
    needs = spec.needs(outputs)
    missing = [name for name in needs if name not in models]
    if missing:
        raise EngineError(f"internal: members {', '.join(missing)} were not loaded")
    loaded = {name: models[name] for name in needs}
    samplerate, channels = check_loaded(spec, loaded)  # before any audio is decoded
    notice = on_notice or (lambda text: log.warning("%s", text))
    device = resolve_device(request.device)
    stems = needed_sources(outputs)
    on_progress(0.0, "reading")
    stats = measure(request, samplerate, channels, should_stop)
    segment = request.segment
    draws = random.getstate()
    while True:
        random.setstate(draws)  # a retry draws the same shift offsets
        runs = [
            member_run(name, model, needs[name], request, stats, segment, device, notice)
            for name, model in loaded.items()
        ]

        def streams(feed: MixFeed, runs: list[MemberRun] = runs) -> list[StemStream]:
            members = [MemberStream(run.model, run.stream(feed)) for run in runs]
            return [EnsembleStream(spec, stems, members, stats.length, channels)]

        # Only the requested stems are computed: no_X is mix − X.
        separation = Separation(samplerate, channels, tuple(stems), True, streams)
        on_progress(STATS_SHARE, "separating")
        try:
            return stream_to_files(request, outputs, stats, separation, on_progress, should_stop)
        except OutOfMemoryError as exc:
            plans = [run.plan for run in runs if run.plan is not None]
            if segment is None and not plans:
                raise
            current = segment if segment is not None else min(map(default_segment, plans))
            segment = shorter_segment(
                exc, current, device, notice, "fewer models in the ensemble",
                " for every model of the ensemble",
            )


def member_run(
    name: str,
    model: Any,
    sources: tuple[str, ...],
    request: RunRequest,
    stats: MixStats,
    segment: float | None,
    device: torch.device,
    notice: Notice,
) -> MemberRun:
    """One member evaluated as a run of that model alone would evaluate it
    (same plan, backend, device and precision). The one place that knows the
    model families: a family with its own stream builds it here from the same
    shared feed (Demucs streams read the normalised windows, others may read
    the raw mix)."""
    from soundforge.engines.local.backends import choose_backend

    if get_spec(name).is_roformer:
        return roformer_member(name, model, request, device, notice)
    if request.seed is not None:
        # Every member draws its shifts from the seed, as its own run would.
        random.seed(request.seed)
    plan = make_plan(
        model,
        stats.length,
        list(sources),
        shifts=request.shifts,
        overlap=request.overlap,
        segment=segment,
        device=device,
    )
    backend = choose_backend(model, plan, device, request, notice)
    mean, std = stats.tensors()
    names = tuple(model.sources)
    return MemberRun(
        name, lambda feed: DemucsStream(plan, feed, backend, names, mean, std), plan
    )


def roformer_member(
    name: str, model: Any, request: RunRequest, device: torch.device, notice: Notice
) -> MemberRun:
    """A RoFormer member: its own chunking on the raw mix of the shared feed
    (the Demucs members' normalisation does not touch it), as its run alone."""
    from soundforge.engines.local.backends import precision_context
    from soundforge.engines.local.roformer.stream import RoformerStream

    check_precision(request.precision, device)
    model.net.to(device)
    return MemberRun(
        name,
        lambda feed: RoformerStream(
            model, feed, device,
            precision=lambda: precision_context(device, request.precision),
            batch=request.batch, notice=notice,
        ),
        None,
    )
