"""Shared fixtures: tiny Demucs models, test audio, an isolated environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from argon2 import PasswordHasher, profiles
from threadpoolctl import threadpool_limits

from soundforge.db import security
from tests.support.audio import write_audio
from tests.support.tiny_models import build_tiny_repo

ROOT = Path(__file__).resolve().parents[1]
SOUNDFORGE_BIN = ROOT / ".venv" / "bin" / "soundforge"


def pytest_configure(config: pytest.Config) -> None:
    """One compute thread per process, from the start of the session.

    `make test` runs two pytest workers on two cores, and most tests start a
    runner or a worker besides. A process with several OpenMP threads on a
    shared core waits at every parallel region for a thread that is not
    running: a tiny separation that takes 0.9 s alone took 22 s that way. The
    per-test ``isolated_env`` comes too late for module-scoped engines (they are
    built before it), so the variable is set here for the whole session, and
    in-process inference gets one torch thread. The environment variables come
    too late for this process's own thread pools (numpy and torch are loaded
    before this hook): threadpoolctl sets them at run time, OpenBLAS's included,
    whose second thread woke for every small dot product. Tests about threads
    set their own.
    """
    os.environ["SOUNDFORGE_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    threadpool_limits(1)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random-weight versions of every offered model, in LocalRepo format."""
    return build_tiny_repo(tmp_path_factory.mktemp("model-repo"))


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id with argon2's cheapest parameters in this process: the hashes are
    real and checked by the same code, but a sign-up costs microseconds instead
    of half a second of CPU (hundreds of tests sign up). Production keeps
    ``security.PASSWORD_PARAMETERS``: tests/web/test_auth.py checks them, and
    that a hash with other parameters is upgraded at login."""
    previous = security.use_password_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))
    yield
    security.use_password_hasher(previous)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own configuration or data."""
    for name in list(os.environ):
        if name.startswith("SOUNDFORGE_") or name in (
            "LALALAI_API_KEY", "SYSTEM_LALALAI_ACTIVATION_KEY",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOUNDFORGE_DATA_DIR", str(tmp_path / "data"))
    # RoFormer downloads: never the developer's own cache.
    monkeypatch.setenv("SOUNDFORGE_MODEL_CACHE", str(tmp_path / "model-cache"))
    # Two pytest workers share the machine's cores: a runner each on every core
    # would only fight over them. Tests that are about threads set their own.
    monkeypatch.setenv("SOUNDFORGE_THREADS", "1")
    # Retries of a failing fake provider, without the real back-off's seconds.
    monkeypatch.setenv("SOUNDFORGE_LALALAI_RETRY_BASE_DELAY", "0.01")
    # Never reach for the network: the hub is unreachable on test machines anyway.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def model_env(monkeypatch: pytest.MonkeyPatch, tiny_repo: Path) -> Path:
    monkeypatch.setenv("SOUNDFORGE_MODEL_REPO", str(tiny_repo))
    return tiny_repo


@pytest.fixture
def song(tmp_path: Path) -> Path:
    """Three seconds of stereo audio at 44.1 kHz."""
    return write_audio(tmp_path / "song.wav", seconds=3.0)


# Fixtures that start processes: a test that uses one takes seconds.
PROCESS_FIXTURES = frozenset({"start_worker", "shared_worker", "postgres_url", "redis_url"})


def _is_slow(item: pytest.Item) -> bool:
    """Marked slow (browser, worker, CLI …), or starting worker or database processes."""
    fixtures = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("slow") is not None or bool(fixtures & PROCESS_FIXTURES)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with slow tests first, so that `make test`'s two workers end together.

    With ``--dist loadgroup`` pytest-xdist hands out the browser group first (its
    largest unit) and then every other test one at a time, in collection order:
    alphabetically, the pipeline's worker-process tests (up to half a minute
    each) came after most quick ones and could be the last thing a worker did
    while the other had nothing left. Longest first, the quick tests fill the
    end. A file moves as a whole, so its module-scoped fixtures stay warm; the
    sort is stable."""
    slow_files = {item.path for item in items if _is_slow(item)}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail grouped tests loudly if ``--dist loadgroup`` stopped grouping.

    pytest-xdist marks a grouped test by appending ``@group`` to its node id on
    each worker; pytest 9.2 ignores that (pytest-dev/pytest-xdist#1386), and the
    browser tests then spread over both workers, each starting Chromium and
    its servers, without any error. constraints.txt pins pytest 9.1.1 until
    xdist follows; this says so if an upgrade brings it back."""
    group = item.get_closest_marker("xdist_group")
    if (
        group is not None
        and getattr(item.config.option, "loadgroup", False)  # an xdist worker, loadgroup
        and not item.nodeid.endswith(f"@{group.args[0]}")
    ):
        pytest.fail(
            f"pytest-xdist did not group this test into {group.args[0]!r} "
            "(pytest-dev/pytest-xdist#1386): keep pytest at the version constraints.txt pins.",
            pytrace=False,
        )
