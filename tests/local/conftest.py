from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from soundforge.config import Settings
from soundforge.engines.local.engine import LocalEngine
from tests.local.ensemble_support import Alone, runs_alone
from tests.support.audio import write_audio


@pytest.fixture(scope="session")
def engine(tiny_repo: Path) -> Iterator[LocalEngine]:
    """One engine (one runner process) for every local test that uses it, as a
    long-running worker holds one: these tests check what it separates, not its
    process (each module used to start its own runner and load the same models
    again). Tests about a runner's lifecycle (warm reuse, kills, stalls, cancel)
    start their own LocalEngine."""
    with LocalEngine(Settings(model_repo=tiny_repo, demucs_timeout=120)) as local:
        yield local


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The song a module's ensembles are compared on: two segments of the tiny models."""
    return write_audio(tmp_path_factory.mktemp("mix") / "song.wav", seconds=2.0)


@pytest.fixture(scope="module")
def alone(engine: LocalEngine, mix: Path, tmp_path_factory: pytest.TempPathFactory) -> Alone:
    """Each model's stems of ``mix`` run alone, computed once per module."""
    return runs_alone(engine, mix, tmp_path_factory.mktemp("alone"))
