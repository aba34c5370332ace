from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from soundforge.config import Settings
from soundforge.engines.local.engine import LocalEngine


@pytest.fixture(scope="session")
def engine(tiny_repo: Path) -> Iterator[LocalEngine]:
    """One engine (one runner process) for every local test that uses it, as a
    long-running worker holds one: these tests check what it separates, not its
    process (each module used to start its own runner and load the same models
    again). Tests about a runner's lifecycle (warm reuse, kills, stalls, cancel)
    start their own LocalEngine."""
    with LocalEngine(Settings(model_repo=tiny_repo, demucs_timeout=120)) as local:
        yield local
