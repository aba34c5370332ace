"""What the browser tests share: Debian's Chromium (started once for a run of
browser tests by the ``browser`` fixture in conftest.py), ``soundforge serve`` on a loopback
port with tiny models, and screenshots to test-artifacts/screenshots/.

A server is the real product: Uvicorn, the embedded worker and its runner
process. Tests that share one (conftest.py's ``server``) each sign up their
own user and upload their own tracks, so none sees another's data.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # The player starts on a click, but the test must not depend on a sound card.
    "--autoplay-policy=no-user-gesture-required",
]


def ensure_chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            check=False,
            timeout=600,
        )
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed and could not be installed "
                    "(apt-get install chromium); browser tests need it.")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ``soundforge serve`` as its console script runs it (``soundforge.cli.main``),
# with argon2's cheapest parameters, as in the test process itself (the
# ``cheap_password_hashing`` fixture of tests/conftest.py): the hashes are real
# and checked by the same code, but each of the browser tests' sign-ups, logins
# and password changes costs microseconds instead of 0.15 s of the server's CPU.
# Production's parameters are tests/web/test_auth.py's, and test_login_limits.py
# runs ``python -m soundforge serve`` with them.
SERVE = (
    "from argon2 import PasswordHasher, profiles\n"
    "from soundforge.db import security\n"
    "security.use_password_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))\n"
    "from soundforge.cli.main import main\n"
    "main()\n"
)


def serve(base: Path, *args: str, **extra_env: str) -> Iterator[str]:
    """``soundforge serve [args]`` on a free loopback port, with tiny models
    (a repository of htdemucs alone unless ``SOUNDFORGE_MODEL_REPO`` is given)."""
    from tests.support.tiny_models import build_tiny_repo

    if "SOUNDFORGE_MODEL_REPO" not in extra_env:
        extra_env["SOUNDFORGE_MODEL_REPO"] = str(
            build_tiny_repo(base / "models", names=("htdemucs",)))
    port = free_port()
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("SOUNDFORGE_") and key not in ("LALALAI_API_KEY",
                                                             "SYSTEM_LALALAI_ACTIVATION_KEY")
    }
    env.update({
        "SOUNDFORGE_DATA_DIR": str(base / "data"),
        "SOUNDFORGE_PORT": str(port),
        "SOUNDFORGE_DEVICE": "cpu",
        "SOUNDFORGE_THREADS": "1",
        "SOUNDFORGE_WORKER_CONCURRENCY": "1",
        "SOUNDFORGE_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        # A job is picked up and its progress reaches the page within 0.1 s
        # instead of 0.5 s: the tests wait for what a person waits for, sooner.
        "SOUNDFORGE_QUEUE_POLL_INTERVAL": "0.1",
        "SOUNDFORGE_EVENTS_POLL_INTERVAL": "0.1",
        **extra_env,
    })
    log = open(base / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", *args], env=env, stdout=log, stderr=log,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Until it answers: a refused connection costs nothing, so ask often.
        deadline = time.monotonic() + 120
        up = False
        while not up and process.poll() is None and time.monotonic() < deadline:
            try:
                up = httpx.get(url + "/login", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.05)
        if not up:
            log.flush()
            pytest.fail("soundforge serve did not come up:\n"
                        + (base / "server.log").read_text()[-3000:])
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # A full-page shot of a scrolled page paints the sticky header mid-page.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
