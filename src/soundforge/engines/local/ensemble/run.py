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
from collections.abc import Mapping
from typing import Any

import torch

from soundforge.engines.local.device import resolve_device
from soundforge.engines.local.ensemble.spec import (
    EnsembleSpec,
    ensemble_outputs,
    ensemble_rate_message,
    parse_ensemble,
)
from soundforge.engines.local.ensemble.stream import EnsembleStream, MemberStream
from soundforge.engines.local.inference import (
    MIN_RETRY_SEGMENT,
    STATS_SHARE,
    Notice,
    Progress,
    Separation,
    ShouldStop,
    default_segment,
    measure,
    needed_sources,
    stream_to_files,
)
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.streaming import (
    DemucsStream,
    MixFeed,
    MixStats,
    Plan,
    make_plan,
)
from soundforge.errors import InvalidOptionError, OutOfMemoryError

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
        raise InvalidOptionError(f"internal: members {', '.join(missing)} were not loaded")
    loaded = {name: models[name] for name in needs}
    samplerate, channels = check_loaded(spec, loaded)  # before any audio is decoded
    notice = on_notice or (lambda text: log.warning("%s", text))
    device = resolve_device(request.device)
    stems = needed_sources(outputs)
    on_progress(0.0, "reading")
    stats = measure(request, samplerate, channels, should_stop)
    segment = request.segment
    while True:
        plans = member_plans(loaded, needs, request, stats, segment, device)
        separation = ensemble_separation(
            spec, stems, loaded, plans, request, stats, device, notice, samplerate, channels
        )
        on_progress(STATS_SHARE, "separating")
        try:
            return stream_to_files(request, outputs, stats, separation, on_progress, should_stop)
        except OutOfMemoryError as exc:
            current = segment if segment is not None else min(map(default_segment, plans.values()))
            shorter = current / 2
            if shorter < MIN_RETRY_SEGMENT:
                raise OutOfMemoryError(
                    f"{exc.message} Even {current:g} s segments one at a time do not fit: "
                    "free the GPU of other programs, try --precision bf16 (or fp16), fewer "
                    "models in the ensemble, or --device cpu."
                ) from None
            notice(
                f"Out of {device} memory with {current:g} s segments one at a time: "
                f"starting again with {shorter:g} s segments for every model of the ensemble."
            )
            segment = shorter


def member_plans(
    models: Mapping[str, Any],
    needs: Mapping[str, tuple[str, ...]],
    request: RunRequest,
    stats: MixStats,
    segment: float | None,
    device: torch.device,
) -> dict[str, Plan]:
    """Each member's segments and shifts, as a run of that model alone would
    draw them: with a seed, every member starts from it, so a seeded ensemble
    combines exactly what the seeded single-model runs write."""
    plans: dict[str, Plan] = {}
    for name, model in models.items():
        if request.seed is not None:
            random.seed(request.seed)
        plans[name] = make_plan(
            model,
            stats.length,
            list(needs[name]),
            shifts=request.shifts,
            overlap=request.overlap,
            segment=segment,
            device=device,
        )
    return plans


def ensemble_separation(
    spec: EnsembleSpec,
    stems: list[str],
    models: Mapping[str, Any],
    plans: Mapping[str, Plan],
    request: RunRequest,
    stats: MixStats,
    device: torch.device,
    notice: Notice,
    samplerate: int,
    channels: int,
) -> Separation:
    from soundforge.engines.local.backends import choose_backend

    mean, std = stats.tensors()
    backends = {
        name: choose_backend(models[name], plans[name], device, request, notice)
        for name in models
    }

    def streams(feed: MixFeed) -> list[Any]:
        members = [
            MemberStream(
                name,
                DemucsStream(
                    plans[name], feed, backends[name], tuple(models[name].sources), mean, std
                ),
            )
            for name in models
        ]
        return [EnsembleStream(spec, stems, members, stats.length, channels)]

    # The ensemble computes only the stems asked for: no_X is mix − X.
    return Separation(samplerate, channels, tuple(stems), True, streams)
