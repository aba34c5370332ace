"""Reporting a separation's provider work as it comes to exist
(``RunHooks.on_provider_work``),
and releasing the work of a run that died (``release_provider_work``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from soundforge.config import Settings
from soundforge.engines.base import (
    CancelToken,
    ProviderWork,
    RunHooks,
    SeparationOptions,
    SeparationResult,
)
from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.engines.lalalai.engine import LalalaiEngine
from soundforge.engines.lalalai.release import release_provider_work
from tests.lalalai.conftest import FAST_RETRY, listing
from tests.support.fake_lalalai import FakeLalalai


@pytest.fixture
def held(fake: FakeLalalai, make_engine: Callable[..., LalalaiEngine]) -> LalalaiEngine:
    """Tasks stay in progress until released (a roomier /check/ budget for the fast polls)."""
    fake.check_limit = 100_000
    fake.hold()
    return make_engine(check_limit=100_000, poll_interval=0.02)


def test_on_tasks_reports_the_source_then_each_task_while_they_run(
    held: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    reports: list[ProviderWork] = []
    states_seen: list[dict[str, str]] = []

    def on_tasks(work: ProviderWork) -> None:
        # What the provider holds at the moment of each report.
        with fake._cond:
            states_seen.append({task.id: task.status for task in fake.tasks.values()})
        reports.append(work)

    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = held.separate(
                song, SeparationOptions(stems=("synth", "wind")), None, CancelToken(),
                tmp_path / "out", RunHooks(on_provider_work=on_tasks),
            )
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    fake.wait_for(lambda: len(reports) == 3)
    # All reported while the tasks still run: nothing has finished yet.
    (source_id,) = fake.sources
    assert reports[0] == ProviderWork(source_id, ())
    assert [len(work.task_ids) for work in reports] == [0, 1, 2]
    assert {work.source_id for work in reports} == {source_id}
    assert set(reports[-1].task_ids) == set(fake.tasks)
    assert all(state == "progress" for seen in states_seen for state in seen.values())
    assert thread.is_alive(), "the separation is still waiting on the provider"

    fake.release()
    thread.join(timeout=30)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert isinstance(result, SeparationResult)
    assert result.provider_work == reports[-1]
    assert len(reports) == 3, "nothing more is reported once every task has started"


def test_a_failing_on_tasks_stops_the_separation_and_cleans_up(
    held: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    def on_tasks(work: ProviderWork) -> None:
        if work.task_ids:
            raise RuntimeError("the recorder is broken")

    with pytest.raises(RuntimeError, match="recorder is broken"):
        held.separate(song, SeparationOptions(stems=("synth", "wind")), None, None,
                      tmp_path / "out", RunHooks(on_provider_work=on_tasks))
    (task,) = fake.tasks.values()  # the second task was never started
    assert task.status == "cancelled" and task.cancelled_by == "cancel"
    assert all(source.deleted for source in fake.sources.values())
    assert listing(tmp_path / "out") == set()
    assert not [name for name in listing(tmp_path) if name.startswith(".staging-")]


def _orphaned_work(fake: FakeLalalai, song: Path, stems: list[str]) -> tuple[str, list[str]]:
    """Upload and start tasks the way a run does, then walk away (the run died)."""
    with LalalaiClient(fake.url, _secret(fake.key), retry=FAST_RETRY) as client:
        source = client.upload(song, song.name)
        tasks = [
            client.split_stem_separator(source.id, {"stem": stem}) for stem in stems
        ]
    return source.id, tasks


def _secret(key: str) -> SecretStr:
    return SecretStr(key)


def test_release_cancels_the_tasks_and_deletes_the_source(
    fake: FakeLalalai, settings: Settings, song: Path
) -> None:
    fake.hold()
    source_id, task_ids = _orphaned_work(fake, song, ["piano", "bass"])
    other = fake.add_key()
    with LalalaiClient(fake.url, _secret(other), retry=FAST_RETRY) as client:
        bystander = client.split_stem_separator(client.upload(song, "b.wav").id,
                                                {"stem": "drum"})

    # No key given: the settings' LALALAI_API_KEY, the engine's precedence.
    outcome = release_provider_work(settings, None, task_ids, source_id, retry=FAST_RETRY)

    assert set(outcome.cancelled) == set(task_ids) and outcome.complete
    assert outcome.source_deleted
    assert all(fake.tasks[task_id].cancelled_by == "cancel" for task_id in task_ids)
    assert fake.sources[source_id].deleted
    assert fake.tasks[bystander].status == "progress", "another key's task is untouched"
    assert outcome.summary() == (
        "At LALAL.AI, SoundForge cancelled 2 unfinished task(s) and deleted the uploaded file."
    )


def test_release_of_finished_tasks_only_deletes_the_source(
    fake: FakeLalalai, settings: Settings, song: Path
) -> None:
    source_id, task_ids = _orphaned_work(fake, song, ["piano"])
    with LalalaiClient(fake.url, _secret(fake.key), retry=FAST_RETRY) as client:
        states = [client.check(task_ids)[task_ids[0]].state for _ in range(fake.polls_to_finish)]
    assert states[-1] == "success"
    outcome = release_provider_work(settings, fake.key, task_ids, source_id, retry=FAST_RETRY)
    assert outcome.cancelled == () and set(outcome.not_cancelled) == set(task_ids)
    assert outcome.source_deleted and outcome.complete
    assert "1 task(s) already ended" in outcome.summary()


def test_release_never_raises_and_never_shows_the_key(
    fake: FakeLalalai, settings: Settings, song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.hold()
    source_id, task_ids = _orphaned_work(fake, song, ["piano"])

    fake.fail_next("cancel", times=FAST_RETRY.attempts)
    fake.fail_next("delete", times=FAST_RETRY.attempts)
    down = release_provider_work(settings, fake.key, task_ids, source_id, retry=FAST_RETRY)
    assert not down.complete and not down.cancelled and not down.source_deleted
    assert "Could not clean up at LALAL.AI" in down.summary()
    assert fake.tasks[task_ids[0]].status == "progress"

    fake.echo_key_in_errors = True
    wrong = "wrong-key-123456789"
    refused = release_provider_work(settings, wrong, task_ids, source_id)
    assert not refused.complete
    assert wrong not in refused.summary() and fake.key not in refused.summary()
    assert not fake.sources[source_id].deleted


def test_release_without_any_key_sends_nothing(fake: FakeLalalai, tmp_path: Path) -> None:
    bare = Settings(data_dir=tmp_path / "data", lalalai_url=fake.url, lalalai_api_key="",
                    system_lalalai_activation_key="")
    outcome = release_provider_work(bare, None, ["1b4e28ba-2fa1-4d2a-8c3e-0a7b8e2c4f10"], None)
    assert not outcome.complete and "no LALAL.AI key" in outcome.summary()
    assert sum(fake.calls.values()) == 0
