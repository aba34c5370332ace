"""Minutes are counted per installation, not per machine: the ledger is the
database every node shares. The provider's minutes left are the truth, and
tasks that were charged and then cancelled count too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from soundforge.config import Settings
from soundforge.db.models import LalalaiUsage
from soundforge.db.session import Database
from soundforge.engines.lalalai.engine import LalalaiEngine
from soundforge.engines.lalalai.quota import get_quota
from soundforge.errors import CancelledError
from tests.lalalai.test_cancellation import Background
from tests.support.fake_lalalai import FakeLalalai


def node(settings: Settings, name: str, database_url: str) -> Settings:
    """Another machine of the installation: its own data folder, the shared
    database and the shared secret."""
    return settings.model_copy(update={"data_dir": settings.data_dir.parent / name,
                                       "database_url": database_url,
                                       "secret_key": SecretStr("the installation's secret")})


def test_every_node_shows_the_minutes_any_node_used(
    fake: FakeLalalai, settings: Settings, make_engine: Callable[..., LalalaiEngine],
    song: Path, tmp_path: Path,
) -> None:
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    web_a, worker_b = node(settings, "web-a", shared), node(settings, "worker-b", shared)
    make_engine(worker_b).separate(song, _options("vocals", "drums"), None, None,
                                   tmp_path / "out")
    on_a, on_b = get_quota(web_a), get_quota(worker_b)
    assert on_a == on_b
    assert on_a["used_minutes"] == pytest.approx(0.1)
    assert on_a["remaining_minutes"] == pytest.approx(fake.minutes_left())
    assert not (worker_b.data_dir / "lalalai" / "usage.jsonl").exists()


def test_cancelled_tasks_that_were_charged_count_and_the_quota_does_not_drift(
    fake: FakeLalalai, settings: Settings, make_engine: Callable[..., LalalaiEngine],
    song: Path, tmp_path: Path,
) -> None:
    fake.check_limit = 100_000
    fake.hold()  # tasks stay in progress until released
    held = make_engine(check_limit=100_000, poll_interval=0.02)
    before = get_quota(settings)
    run = Background(held, song, tmp_path / "cancelled", stems=("bass", "drums"))
    fake.wait_for(lambda: len(fake.tasks) == 1 and all(t.started for t in fake.tasks.values()))
    run.token.cancel()
    run.join()
    assert isinstance(run.error, CancelledError)
    fake.release()
    make_engine().separate(song, _options("vocals"), None, None, tmp_path / "done")

    after = get_quota(settings)
    charged = before["remaining_minutes"] - fake.minutes_left()
    # What the provider says is left is what we show, and what it charged (the
    # cancelled task too) is what we count: the total stays put.
    assert after["remaining_minutes"] == pytest.approx(fake.minutes_left())
    assert after["used_minutes"] - before["used_minutes"] == pytest.approx(charged)
    assert after["quota_minutes"] == pytest.approx(before["quota_minutes"])
    db = Database(settings)
    try:
        with db.session() as session:
            flags = sorted(row.cancelled for row in session.query(LalalaiUsage))
    finally:
        db.dispose()
    assert flags == [False, True]


def _options(*stems: str):
    from soundforge.engines.base import SeparationOptions

    return SeparationOptions(stems=stems)
