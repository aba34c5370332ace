"""Fixtures for the LALAL.AI engine: a running fake server, settings and
engines pointed at it, test audio, and helpers to read what was written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from soundforge.config import Settings
from soundforge.engines.lalalai.engine import LalalaiEngine
from soundforge.engines.lalalai.retrying import RetryPolicy
from tests.support.audio import write_audio
from tests.support.fake_lalalai import FakeLalalai, fake_lalalai, fake_lalalai_server

__all__ = ["fake_lalalai", "fake_lalalai_server"]  # fixtures, for this package's tests

# Tiny delays so retries and back-off cost milliseconds; the behaviour (how
# many tries, which key, what is given up) is the production one.
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.005, max_delay=0.05)
FAST_POLL = 0.01


@pytest.fixture
def fake(fake_lalalai: FakeLalalai) -> FakeLalalai:
    return fake_lalalai


@pytest.fixture
def settings(fake: FakeLalalai, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        lalalai_url=fake.url,
        lalalai_api_key=fake.key,
        lalalai_poll_interval=FAST_POLL,
    )


@pytest.fixture
def make_engine(settings: Settings) -> Iterator[Callable[..., LalalaiEngine]]:
    engines: list[LalalaiEngine] = []

    def make(settings_: Settings | None = None, **kwargs: Any) -> LalalaiEngine:
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("poll_interval", FAST_POLL)
        engine = LalalaiEngine(settings_ or settings, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., LalalaiEngine]) -> LalalaiEngine:
    return make_engine()


@pytest.fixture
def long_song(tmp_path: Path) -> Path:
    """75 s of mono audio at 8 kHz: longer than a preview, still small."""
    return write_audio(tmp_path / "long song.wav", seconds=75.0, rate=8000, channels=1)


def gain(stem: Path, reference: Path) -> float:
    """Least-squares gain of ``stem`` against ``reference`` (same length and rate)."""
    out, out_rate = sf.read(stem, dtype="float64", always_2d=True)
    ref, ref_rate = sf.read(reference, dtype="float64", always_2d=True)
    assert out_rate == ref_rate
    assert out.shape == ref.shape
    return float(np.sum(out * ref) / np.sum(ref * ref))


def listing(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()} if folder.exists() else set()
