from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from soundforge.config import Settings
from soundforge.engines.local.engine import LocalEngine


@pytest.fixture(scope="module")
def engine(tiny_repo: Path) -> Iterator[LocalEngine]:
    """One engine (one runner process) per test module, as a worker would hold it."""
    with LocalEngine(Settings(model_repo=tiny_repo, demucs_timeout=120)) as local:
        yield local
