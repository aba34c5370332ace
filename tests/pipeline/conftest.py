"""Fixtures for the pipeline tests: a data directory, users, tracks, worker processes.

Worker processes are the real ``soundforge worker`` command, started in their
own session (process group) so a test can SIGKILL one and the teardown can
stop whatever is left, runner processes included. Timings are shortened
through the same ``SOUNDFORGE_*`` variables a deployment would use; tests wait
for states with generous limits and never assert how long anything took.

Two kinds of worker:

* ``start_worker``: a worker of the test's own, in the test's own data folder,
  for tests about a worker's life (started after the jobs, killed, stopped,
  two of them, its own settings);
* ``shared_worker``: one worker process per test session (per xdist worker),
  already running, with its own data folder that the tests using it share, for
  tests about what happens to jobs, not to the process. Each such test has its
  own user (and so its own tracks and jobs), sees only the worker's log written
  during the test, and leaves no job unfinished for the next one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from soundforge.config import Settings
from soundforge.db.accounts import create_user, set_lalalai_key
from soundforge.db.migrate import upgrade_database
from soundforge.db.models import FINAL_STATUSES, ProcessingJob, Track, User, UserSettings
from soundforge.jobs import Pipeline, cancel_job
from soundforge.jobs.state import load_job
from soundforge.library.tracks import import_track
from tests.conftest import SOUNDFORGE_BIN
from tests.support.audio import write_audio
from tests.support.fake_lalalai import (  # noqa: F401  (fixtures)
    FakeLalalai,
    fake_lalalai,
    fake_lalalai_server,
)
from tests.support.services import (  # noqa: F401  (fixtures)
    postgres_server,
    postgres_url,
    redis_server,
    redis_url,
)

T = TypeVar("T")

# What a data folder holds when SQLite is the database: the database and the
# secret generated on first use (config.py: "SQLite in the data dir", "generated
# into the data dir").
SQLITE_FILE = "soundforge.db"
SECRET_FILE = "secret_key"

FAST_TIMINGS = {
    "SOUNDFORGE_HEARTBEAT_INTERVAL": "0.5",
    "SOUNDFORGE_RECONCILE_INTERVAL": "0.5",
    "SOUNDFORGE_CANCEL_POLL_INTERVAL": "0.2",
    "SOUNDFORGE_QUEUE_POLL_INTERVAL": "0.1",
    "SOUNDFORGE_EVENTS_POLL_INTERVAL": "0.1",
    "SOUNDFORGE_REDISPATCH_AFTER": "2",
    # The machine is shared: one inference thread per runner.
    "SOUNDFORGE_THREADS": "1",
}


def wait_for(
    predicate: Callable[[], T], what: str, timeout: float = 180.0, interval: float = 0.1
) -> T:
    """Poll until ``predicate()`` is truthy; fail (saying what) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def pipeline_env(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tiny_repo: Path
) -> dict[str, str]:
    monkeypatch.setenv("SOUNDFORGE_MODEL_REPO", str(tiny_repo))
    for name, value in FAST_TIMINGS.items():
        monkeypatch.setenv(name, value)
    if "shared_worker" in request.fixturenames:
        # The shared worker's data folder (database, queue, uploads, secret).
        shared: SharedWorkerProcess = request.getfixturevalue("shared_worker_process")
        monkeypatch.setenv("SOUNDFORGE_DATA_DIR", str(shared.data_dir))
    return dict(os.environ)


@pytest.fixture
def settings(pipeline_env: dict[str, str]) -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose SQLite database was migrated to head once per session,
    with the secret generated for it (the pair belongs together: the database
    records which secret it was made with)."""
    data_dir = tmp_path_factory.mktemp("migrated") / "data"
    upgrade_database(Settings(data_dir=data_dir, database_url=None, secret_key=None))
    return data_dir


@pytest.fixture
def pipeline(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Pipeline]:
    # A new SQLite database starts as a copy of the migrated one: migrating it
    # anew cost ~0.1 s of CPU in every test. The migrations themselves are
    # tested in test_db.py, on folders of their own.
    data_dir = Path(settings.data_dir)
    if (settings.database_url is None and settings.secret_key is None
            and not (data_dir / SQLITE_FILE).exists()):
        template: Path = request.getfixturevalue("migrated_sqlite")
        data_dir.mkdir(parents=True, exist_ok=True)
        for name in (SQLITE_FILE, SECRET_FILE):
            shutil.copy2(template / name, data_dir / name)
    with Pipeline.open(settings) as opened:
        yield opened


@pytest.fixture
def user(request: pytest.FixtureRequest, pipeline: Pipeline) -> User:
    # In the shared worker's database every test signs up a user of its own.
    email = (f"ada-{uuid.uuid4().hex[:12]}@example.com"
             if "shared_worker" in request.fixturenames else "ada@example.com")
    with pipeline.db.transaction() as session:
        return create_user(session, email, "correct horse battery")


@pytest.fixture
def make_track(pipeline: Pipeline, user: User, tmp_path: Path) -> Callable[..., Track]:
    counter = iter(range(10_000))

    def make(seconds: float = 2.0, seed: int | None = None, owner: User | None = None) -> Track:
        number = next(counter)
        source = write_audio(
            tmp_path / f"input-{number}.wav", seconds=seconds,
            seed=number if seed is None else seed,
        )
        return import_track(pipeline, owner or user, source, filename=f"Song {number}.wav")

    return make


def job_row(pipeline: Pipeline, job_id: str) -> ProcessingJob | None:
    return load_job(pipeline, job_id)


def wait_final(pipeline: Pipeline, job_id: str, timeout: float = 240.0) -> ProcessingJob:
    def final() -> ProcessingJob | None:
        job = load_job(pipeline, job_id)
        assert job is not None, f"job {job_id} vanished"
        return job if job.status in FINAL_STATUSES else None

    return wait_for(final, f"job {job_id} to finish", timeout)


def wait_status(
    pipeline: Pipeline, job_id: str, status: str, min_progress: int = 0, timeout: float = 240.0
) -> ProcessingJob:
    def reached() -> ProcessingJob | None:
        job = load_job(pipeline, job_id)
        if job is not None and job.status == status and job.progress >= min_progress:
            return job
        if job is not None and job.status in FINAL_STATUSES and job.status != status:
            raise AssertionError(f"job ended {job.status}: {job.error_message}")
        return None

    return wait_for(reached, f"job {job_id} to be {status} at {min_progress} %", timeout)


class WorkerProcess:
    """One ``soundforge worker`` process (and its runner children)."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(SOUNDFORGE_BIN), "worker", "--concurrency", str(concurrency)],
            env={**env, "SOUNDFORGE_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker process itself (its runner children are on their own)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful stop) and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """The teardown's stop: SIGKILL the whole group at once (the worker, its
        runners, a runner orphaned by a killed worker). A graceful stop (jobs
        handed back, runners asked to exit) is what tests check through
        ``terminate``; at teardown it only cost time (up to 30 s a worker). Runners
        killed this way are not reaped by their worker, so /usr/bin/time does not
        count their CPU: compare CPU measured with a child subreaper."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def start_worker(
    pipeline_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []
    numbers = itertools.count(1)  # next() is atomic: tests may start workers from threads

    def start(concurrency: int = 1, **env: Any) -> WorkerProcess:
        full_env = {**os.environ, **{key: str(value) for key, value in env.items()}}
        worker = WorkerProcess(full_env, tmp_path / f"worker-{next(numbers)}.log", concurrency)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


class SharedWorkerProcess:
    """The session's shared ``soundforge worker`` and its data folder."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.data_dir = home / "data"
        self.env = {**env, "SOUNDFORGE_DATA_DIR": str(self.data_dir)}
        # The database is created (and migrated) before the worker starts, so
        # the worker and the first test never migrate it at the same time.
        with pytest.MonkeyPatch.context() as patch:
            for name in list(os.environ):
                patch.delenv(name)
            for name, value in self.env.items():
                patch.setenv(name, value)
            with Pipeline.open(Settings()):
                pass
        self.process = WorkerProcess(self.env, home / "worker.log", concurrency=1)


class SharedWorker:
    """What one test sees of the shared worker: the process, and its log from the
    moment the test started."""

    def __init__(self, shared: SharedWorkerProcess) -> None:
        self._process = shared.process
        self._log_start = shared.process.log_path.stat().st_size

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.alive()

    def log(self) -> str:
        with open(self._process.log_path, "rb") as handle:
            handle.seek(self._log_start)
            return handle.read().decode(errors="replace")


@pytest.fixture(scope="session")
def shared_worker_process(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_repo: Path,
    fake_lalalai_server: FakeLalalai,  # noqa: F811
) -> Iterator[SharedWorkerProcess]:
    home = tmp_path_factory.mktemp("shared-worker")
    # The environment isolated_env gives every test, set here once for the
    # session (this fixture outlives any one test's monkeypatching).
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith("SOUNDFORGE_")
        and name not in ("LALALAI_API_KEY", "SYSTEM_LALALAI_ACTIVATION_KEY")
    }
    env.update(FAST_TIMINGS)
    env.update({
        "SOUNDFORGE_MODEL_REPO": str(tiny_repo),
        "SOUNDFORGE_MODEL_CACHE": str(home / "model-cache"),
        "SOUNDFORGE_LALALAI_RETRY_BASE_DELAY": "0.01",
        "HF_HUB_OFFLINE": "1",
        # What lalalai_user gives a worker of a test's own.
        "SOUNDFORGE_LALALAI_URL": fake_lalalai_server.url,
        "SOUNDFORGE_LALALAI_POLL_INTERVAL": "0.2",
        # Recovery is for tests with workers of their own: a shared worker
        # sweeping every half second would only spend CPU between tests.
        "SOUNDFORGE_RECONCILE_INTERVAL": "60",
    })
    shared = SharedWorkerProcess(home, env)
    try:
        yield shared
    finally:
        shared.process.stop()


@pytest.fixture
def shared_worker(
    shared_worker_process: SharedWorkerProcess, pipeline: Pipeline
) -> Iterator[SharedWorker]:
    """The running shared worker (see the module docstring); at the end, any job
    the test left unfinished is cancelled and waited for, so the next test
    starts with nothing of it running."""
    assert shared_worker_process.process.alive(), (
        "the shared worker process died:\n" + shared_worker_process.process.log()[-4000:]
    )
    yield SharedWorker(shared_worker_process)
    with pipeline.db.session() as session:
        unfinished = list(session.execute(
            select(ProcessingJob.id, ProcessingJob.user_id)
            .where(ProcessingJob.status.not_in([status.value for status in FINAL_STATUSES]))
        ))
    for job_id, user_id in unfinished:
        with contextlib.suppress(Exception):
            cancel_job(pipeline, user_id, job_id)
    for job_id, _ in unfinished:
        wait_final(pipeline, job_id)


def staging_dirs(pipeline: Pipeline) -> list[Path]:
    stems = pipeline.stems_dir
    return [p for p in stems.iterdir() if p.name.startswith(".staging-")] if stems.is_dir() else []


@pytest.fixture
def lalalai_user(pipeline, user, fake_lalalai, monkeypatch):  # noqa: F811
    """``user`` with LALAL.AI as the default engine and the fake server's key.
    The URL goes into the environment too: worker processes must reach the fake."""
    monkeypatch.setenv("SOUNDFORGE_LALALAI_URL", fake_lalalai.url)
    monkeypatch.setenv("SOUNDFORGE_LALALAI_POLL_INTERVAL", "0.2")
    pipeline.settings.lalalai_url = fake_lalalai.url  # type: ignore[misc]
    with pipeline.db.transaction() as session:
        row = session.get(UserSettings, user.id)
        row.engine = "lalalai"
        row.lalalai_preview = False
        set_lalalai_key(pipeline.settings, row, fake_lalalai.key)
    return user
