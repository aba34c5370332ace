"""A loaded RoFormer model as the streaming core's ``Separation``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from soundforge.engines.local.backends import precision_context
from soundforge.engines.local.device import check_precision
from soundforge.engines.local.inference import Separation
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.roformer.loader import RoformerModel
from soundforge.engines.local.roformer.stream import RoformerStream


def roformer_separation(
    model: RoformerModel,
    request: RunRequest,
    device: torch.device,
    notice: Callable[[str], None] | None = None,
) -> Separation:
    """One ``RoformerStream`` on ``device`` at the requested precision.

    RoFormer works on the raw mix (no normalisation), so the feed's mean and
    standard deviation are left at 0 and 1 by the caller. Chunks are
    independent and of one length, so ``--batch N`` stacks N per network call;
    without it, one on the CPU, and on CUDA as many as the free memory holds
    after measuring the first call.
    """
    check_precision(request.precision, device)
    model.net.to(device)
    batch = request.batch  # None: 1 per call, or sized from free memory on CUDA
    return Separation(
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
                batch=batch,
                notice=notice,
            )
        ],
    )
