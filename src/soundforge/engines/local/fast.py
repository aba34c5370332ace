"""Which code evaluates the network on each segment.

Placeholder until the CPU fast path lands: the official modules everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.streaming import Plan, ReferenceBackend, SegmentBackend

log = logging.getLogger(__name__)


def choose_backend(
    model: Any, plan: Plan, device: torch.device, request: RunRequest
) -> SegmentBackend:
    return ReferenceBackend(device)
