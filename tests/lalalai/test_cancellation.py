"""Cancelling one separation, and cancelling all of a key's tasks."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from soundforge.config import Settings
from soundforge.engines.base import CancelToken, SeparationOptions
from soundforge.engines.lalalai.engine import LalalaiEngine
from soundforge.engines.lalalai.release import cancel_all
from soundforge.engines.lalalai.retrying import RetryPolicy
from soundforge.errors import CancelledError
from tests.lalalai.conftest import listing
from tests.support.fake_lalalai import FakeLalalai, FakeTask


class Background:
    """A separation running in a thread, its outcome kept for the test."""

    def __init__(self, engine: LalalaiEngine, song: Path, out: Path, **options: object) -> None:
        self.token = CancelToken()
        self.out = out
        self.result: dict[str, Path] | None = None
        self.error: BaseException | None = None
        self.progress: list[int] = []
        self._thread = threading.Thread(
            target=self._run, args=(engine, song, SeparationOptions(**options)), daemon=True
        )
        self._thread.start()

    def _run(self, engine: LalalaiEngine, song: Path, options: SeparationOptions) -> None:
        try:
            result = engine.separate(song, options, self.progress.append, self.token, self.out)
            self.result = result.stems
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the separation did not end"


@pytest.fixture
def held(fake: FakeLalalai, make_engine: Callable[..., LalalaiEngine]) -> LalalaiEngine:
    """An engine against a server whose tasks stay in progress until released;
    polling that fast for that long needs a roomier /check/ budget."""
    fake.check_limit = 100_000
    fake.hold()
    return make_engine(check_limit=100_000, poll_interval=0.02)


def copy_as(song: Path, name: str) -> Path:
    target = song.with_name(name)
    shutil.copy(song, target)
    return target


def task_of(fake: FakeLalalai, source_name: str) -> FakeTask:
    with fake._cond:
        (task,) = [task for task in fake.tasks.values()
                   if fake.sources[task.source_id].name == source_name]
        return task


def both_running(fake: FakeLalalai) -> bool:
    return len(fake.tasks) == 2 and all(task.started for task in fake.tasks.values())


def test_cancel_one_running_separation(
    held: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    a = Background(held, copy_as(song, "a.wav"), tmp_path / "a", stems=("bass", "drums"))
    b = Background(held, copy_as(song, "b.wav"), tmp_path / "b", stems=("bass", "drums"))
    fake.wait_for(lambda: both_running(fake))
    task_a, task_b = task_of(fake, "a.wav"), task_of(fake, "b.wav")
    # One poll loop for both separations: their tasks go in the same /check/.
    fake.wait_for(lambda: any(set(batch) == {task_a.id, task_b.id}
                              for batch in fake.check_batches))

    a.token.cancel()
    a.join()
    assert isinstance(a.error, CancelledError)
    assert task_a.status == "cancelled"
    assert fake.sources[task_a.source_id].deleted
    assert listing(tmp_path / "a") == set()
    # The other separation is untouched and finishes once the provider does.
    assert task_b.status == "progress"
    assert not fake.sources[task_b.source_id].deleted
    fake.release()
    b.join()
    assert b.error is None and b.result is not None
    assert set(b.result) == {"bass", "drums", "rest"}
    assert fake.sources[task_b.source_id].deleted
    assert not [name for name in listing(tmp_path) if name.startswith(".staging-")]


def test_cancel_all_of_a_keys_tasks(
    held: LalalaiEngine, fake: FakeLalalai, settings: Settings, song: Path, tmp_path: Path
) -> None:
    a = Background(held, copy_as(song, "a.wav"), tmp_path / "a", stems=("synth",))
    b = Background(held, copy_as(song, "b.wav"), tmp_path / "b", stems=("wind",))
    fake.wait_for(lambda: both_running(fake))

    outcomes = cancel_all(settings)  # as the web app calls it, from anywhere

    assert sorted(outcome.ok for outcome in outcomes.values()) == [True, True]
    assert set(outcomes) == set(fake.tasks)
    for background in (a, b):
        background.join()
        assert isinstance(background.error, CancelledError)
        assert "cancelled on the provider's side" in str(background.error)
        assert listing(background.out) == set()
    assert all(task.status == "cancelled" for task in fake.tasks.values())
    assert all(source.deleted for source in fake.sources.values())
    assert fake.calls["cancel_all"] == 1


def test_cancel_all_spares_other_keys(
    held: LalalaiEngine, fake: FakeLalalai, settings: Settings, song: Path, tmp_path: Path
) -> None:
    a = Background(held, song, tmp_path / "a", stems=("piano",))
    fake.wait_for(lambda: len(fake.tasks) == 1)
    other = fake.add_key()
    outcomes = cancel_all(settings, api_key=other)
    assert outcomes == {}
    (task,) = fake.tasks.values()
    assert task.status == "progress"
    fake.release()
    a.join()
    assert a.error is None


def test_cancel_before_start_sends_nothing(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        engine.separate(song, SeparationOptions(stems=("bass",)), None, token, tmp_path / "o")
    assert sum(fake.calls.values()) == 0


def test_cancel_during_upload_keeps_nothing(
    engine: LalalaiEngine, fake: FakeLalalai, long_song: Path, tmp_path: Path
) -> None:
    # long_song is more than one upload chunk: cancel once the first is sent.
    assert long_song.stat().st_size > 1 << 20
    token = CancelToken()
    seen: list[int] = []

    def cancel_mid_upload(percent: int) -> None:
        seen.append(percent)
        if 2 < percent < 9:
            token.cancel()

    with pytest.raises(CancelledError):
        engine.separate(long_song, SeparationOptions(stems=("bass",)),
                        cancel_mid_upload, token, tmp_path / "o")
    assert max(seen) < 9
    assert not fake.sources and not fake.tasks
    assert listing(tmp_path / "o") == set()


def test_cancel_during_download_keeps_nothing(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    token = CancelToken()
    seen: list[int] = []

    def cancel_after_the_first_track(percent: int) -> None:
        seen.append(percent)
        if percent >= 90:  # one of the two tracks is written to staging
            token.cancel()

    with pytest.raises(CancelledError):
        engine.separate(song, SeparationOptions(stems=("bass",)),
                        cancel_after_the_first_track, token, tmp_path / "o")
    assert len(fake.downloads) == 1
    assert listing(tmp_path / "o") == set()
    assert not [name for name in listing(tmp_path) if name.startswith(".staging-")]
    assert all(source.deleted for source in fake.sources.values())
    assert fake.calls["cancel"] == 0  # the task had finished: nothing to cancel


@pytest.mark.parametrize("endpoint", ["upload", "download"])
def test_cancel_during_a_retry_wait_ends_the_wait(
    endpoint: str,
    fake: FakeLalalai,
    make_engine: Callable[..., LalalaiEngine],
    song: Path,
    tmp_path: Path,
) -> None:
    """The wait before a retry listens to the cancel: with these delays (150 s or
    more before the second try) the run could not end within ``join``'s 30 s
    otherwise."""
    engine = make_engine(retry=RetryPolicy(attempts=3, base_delay=300.0, max_delay=300.0))
    fake.fail_next(endpoint, 1, status=503)
    run = Background(engine, song, tmp_path / "o", stems=("bass",))
    fake.wait_for(lambda: fake.calls[endpoint] >= 1)
    run.token.cancel()
    run.join()
    assert isinstance(run.error, CancelledError)
    assert fake.calls[endpoint] == 1, "no second try after the cancel"
    assert listing(tmp_path / "o") == set()
    assert not [name for name in listing(tmp_path) if name.startswith(".staging-")]
    assert all(source.deleted for source in fake.sources.values())
