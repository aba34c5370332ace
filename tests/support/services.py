"""Real PostgreSQL and Redis servers for tests, started on 127.0.0.1 on free ports.

Debian's packages (``scripts/bootstrap.sh --test`` installs ``postgresql`` and
``redis-server``) provide the binaries. PostgreSQL refuses to run as root, so
when the tests run as root the cluster belongs to the ``postgres`` system user
(or ``nobody``) and is started through ``runuser``. The data lives in a
temporary folder and is thrown away; durability is switched off (fsync …)
because nothing has to survive the test session.

Fixtures (session-scoped servers, per-test fresh databases):

* ``postgres_server`` / ``redis_server``: the running servers;
* ``postgres_url``: a new empty database for one test;
* ``redis_url``: a Redis database index flushed for one test.

When a binary is missing the fixtures skip with a message saying how to
install it.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

INSTALL_HINT = (
    "install them with `scripts/bootstrap.sh --test` "
    "(or `apt-get install -y postgresql redis-server`)"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# --- PostgreSQL ------------------------------------------------------------------
def find_pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _pg_user() -> str | None:
    """The account to run PostgreSQL as (None = ourselves, when not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' account to run PostgreSQL")


@dataclass
class PostgresServer:
    root: Path
    port: int
    user: str | None
    pg_ctl: str
    _databases: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._databases)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        _run_as(self.user, [self.pg_ctl, "-D", str(self.root / "data"), "-m", "immediate",
                            "-w", "stop"], check=False)


def _run_as(
    user: str | None, argv: list[str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()[-2000:]}")
    return result


def start_postgres(root: Path) -> PostgresServer:
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise FileNotFoundError("initdb/pg_ctl")
    user = _pg_user()
    root.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    _run_as(user, [initdb, "-D", str(root / "data"), "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--no-sync"])
    port = free_port()
    options = (
        f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    _run_as(user, [pg_ctl, "-D", str(root / "data"), "-o", options, "-l",
                   str(root / "server.log"), "-w", "-t", "60", "start"])
    _wait_port(port, 30)
    return PostgresServer(root, port, user, pg_ctl)


# --- Redis --------------------------------------------------------------------------
@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    _dbs: itertools.count[int] = field(default_factory=lambda: itertools.count(0))

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def fresh_url(self) -> str:
        import redis

        # 16 databases by default; cycle through them and flush the one handed out.
        db = next(self._dbs) % 16
        client = redis.Redis.from_url(self.url(db))
        try:
            client.flushdb()
        finally:
            client.close()
        return self.url(db)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_redis(root: Path) -> RedisServer:
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        raise FileNotFoundError("redis-server")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(root), "--logfile", str(root / "redis.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, 30, proc)
    return RedisServer(port, proc)


# --- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: its base folder is private to us (0700), and
    # the postgres account must be able to reach its cluster.
    root = Path(tempfile.mkdtemp(prefix="soundforge-pg-"))
    try:
        try:
            server = start_postgres(root)
        except FileNotFoundError:
            pytest.skip(f"PostgreSQL is not installed: {INSTALL_HINT}")
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError:
        pytest.skip(f"Redis is not installed: {INSTALL_HINT}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.fresh_url()
