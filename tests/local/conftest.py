from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from soundforge.config import Settings
from soundforge.engines.local.engine import LocalEngine


@pytest.fixture(scope="module")
def engine(tiny_repo: Path) -> Iterator[LocalEngine]:
    """One engine (one runner process) per test module, as a worker would hold it."""
    with LocalEngine(Settings(model_repo=tiny_repo, demucs_timeout=120)) as local:
        yield local


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """In-process inference on one thread: the test machine is shared, and
    pytest runs two workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
