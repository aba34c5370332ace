"""The ``local`` engine: Demucs through a supervised runner process."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from soundforge.audio.probe import probe
from soundforge.config import Settings, get_settings
from soundforge.engines.base import (
    CancelToken,
    NoticeCallback,
    ProgressCallback,
    RunHooks,
    SeparationOptions,
    SeparationResult,
    validate_common,
)
from soundforge.engines.local import protocol
from soundforge.engines.local.catalog import get_spec, resolve_outputs
from soundforge.engines.local.device import (
    PRECISIONS,
    RunnerPlacement,
    cuda_device_count,
    parse_device,
    resolve_device,
)
from soundforge.engines.local.ensemble.spec import check_ensemble_request, is_ensemble
from soundforge.engines.local.port import DemucsPort, MessageHook
from soundforge.engines.local.request import RunRequest
from soundforge.errors import InvalidOptionError
from soundforge.storage.staging import staging_for

log = logging.getLogger(__name__)


class LocalEngine:
    name = "local"

    def __init__(
        self,
        settings: Settings | None = None,
        port: DemucsPort | None = None,
        placement: RunnerPlacement | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.port = port or DemucsPort(
            stall_timeout=self.settings.demucs_timeout, max_time=self.settings.demucs_max_time
        )
        # Which of the machine's concurrent runners this engine's is (a worker
        # thread each): it decides the runner's GPU and its share of the cores.
        self.placement = placement or RunnerPlacement()

    def device_for(self, options: SeparationOptions) -> str:
        choice = parse_device(options.device or self.settings.device)
        if choice in ("auto", "cuda") and self.placement.slots > 1:
            return self.placement.device(choice, cuda_device_count())
        return choice

    def validate(self, options: SeparationOptions) -> SeparationOptions:
        if is_ensemble(options.model):
            check_ensemble_request(
                options.model, options.stems, options.two_stems, options.segment
            )
            spec = None
        else:
            spec = get_spec(options.model)
            resolve_outputs(spec, options.stems, options.two_stems)
        validate_common(options)
        device = parse_device(options.device or self.settings.device)
        if device != "auto" and device != "cpu":
            resolve_device(device)  # an explicit GPU that is not there: say so now
        precision = options.precision or self.settings.precision
        if precision not in PRECISIONS:
            raise InvalidOptionError(
                f"Unknown precision {precision!r}: use {', '.join(PRECISIONS)}."
            )
        if (
            options.segment is not None
            and spec is not None
            and spec.max_segment is not None
            and options.segment > spec.max_segment
        ):
            # The transformer was trained on this length; the runner would refuse
            # it too, but only after the job was queued and a worker took it.
            raise InvalidOptionError(
                f"Option 'segment' is {options.segment:g} s; {spec.name} allows at most "
                f"{spec.max_segment:g} s. Use a shorter segment or none."
            )
        return options

    def check_quota(self, options: SeparationOptions, duration: float) -> float | None:
        """Local runs cost nothing: there is no account to check."""
        return None

    def separate(
        self,
        input_path: Path,
        options: SeparationOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        destination: Path | None = None,
        hooks: RunHooks | None = None,
    ) -> SeparationResult:
        if destination is None:
            raise InvalidOptionError("No destination folder given for the stems.")
        options = self.validate(options)
        input_path = Path(input_path)
        probe(input_path)  # refuse a bad file before a model is loaded
        with staging_for(destination) as staging:
            request = RunRequest.build(
                self.port.next_id(),
                input_path,
                staging.path,
                options,
                repo=self.settings.model_repo,
                device=self.device_for(options),
                precision=options.precision or self.settings.precision,
                threads=self.placement.threads(self.settings.threads),
            )
            started = time.perf_counter()
            result = self.port.separate(
                request, on_progress, cancel, _notices_to(hooks.on_notice if hooks else None)
            )
            staged = {name: Path(path) for name, path in result["stems"].items()}
            moved = staging.commit()
        return SeparationResult(
            stems={name: moved[path.name] for name, path in staged.items()},
            reused=bool(result.get("model_reused")),
            timings=_timings(result, time.perf_counter() - started),
        )

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _notices_to(on_notice: NoticeCallback | None) -> MessageHook | None:
    """The runner's ``notice`` messages → the caller's ``on_notice``."""
    if on_notice is None:
        return None

    def forward(message: dict[str, Any]) -> None:
        if message.get("type") == protocol.NOTICE:
            on_notice(str(message.get("message") or ""))

    return forward


def _timings(result: dict[str, Any], total: float) -> dict[str, float]:
    """The runner's model-load seconds (0 when it was already loaded) and the whole run's."""
    timings = {"total": round(total, 3)}
    load = result.get("load_seconds")
    if isinstance(load, int | float):
        timings["load"] = float(load)
    return timings
