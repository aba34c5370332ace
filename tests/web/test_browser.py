"""The product in a real browser: Debian's Chromium driven by Playwright against
``soundforge serve`` (real Uvicorn, real embedded worker, tiny Demucs models).

Screenshots of every page go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.audio import write_audio

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

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


def _ensure_chromium() -> str:
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(base: Path, *args: str, **extra_env: str) -> Iterator[str]:
    """``soundforge serve [args]`` on a free loopback port, with tiny models."""
    from tests.support.tiny_models import build_tiny_repo

    repo = build_tiny_repo(base / "models", names=("htdemucs",))
    port = _free_port()
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("SOUNDFORGE_") and key not in ("LALALAI_API_KEY",
                                                             "SYSTEM_LALALAI_ACTIVATION_KEY")
    }
    env.update({
        "SOUNDFORGE_DATA_DIR": str(base / "data"),
        "SOUNDFORGE_MODEL_REPO": str(repo),
        "SOUNDFORGE_PORT": str(port),
        "SOUNDFORGE_DEVICE": "cpu",
        "SOUNDFORGE_THREADS": "1",
        "SOUNDFORGE_WORKER_CONCURRENCY": "1",
        "SOUNDFORGE_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        **extra_env,
    })
    log = open(base / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "soundforge", "serve", *args], env=env, stdout=log, stderr=log,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                break
            try:
                if httpx.get(url + "/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        if process.poll() is not None:
            log.flush()
            pytest.fail("soundforge serve exited:\n" + (base / "server.log").read_text()[-3000:])
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def streaming_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose player streams every separation (decode limit 0 minutes)."""
    yield from _serve(tmp_path_factory.mktemp("browser-stream"),
                      SOUNDFORGE_PLAYER_DECODE_LIMIT_MINUTES="0")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = _ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # A full-page shot of a scrolled page paints the sticky header mid-page.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_newcomer_journey(server: str, browser, tmp_path: Path) -> None:
    """Sign up, upload, separate, watch progress, play, mute/solo, export, settings."""
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(20_000)

    # --- sign up ------------------------------------------------------------------
    page.goto(server + "/")
    assert page.url.startswith(server + "/login")
    shot(page, "login")
    page.click("text=Create an account")
    page.fill("#display_name", "Alice")
    page.fill("#email", "alice@example.com")
    page.fill("#password", "correct horse battery")
    shot(page, "signup")
    page.click("button:has-text('Create account')")
    page.wait_for_url(server + "/")
    assert page.locator("h1").inner_text() == "Library"
    shot(page, "library-empty")

    # --- upload -----------------------------------------------------------------
    song = write_audio(tmp_path / "Night Drive.wav", seconds=4.0)
    page.set_input_files("#upload-input", str(song))
    page.wait_for_selector("[data-track-card]", timeout=30_000)
    card = page.locator("[data-track-card]").first
    assert "Night Drive" in card.inner_text()
    assert "0:04" in card.inner_text()

    # --- separate: the dialog, pre-filled; a double click makes one job -----------
    card.locator("[data-open-separate]").click()
    dialog = page.locator("#separate-dialog")
    dialog.wait_for(state="visible")
    assert dialog.locator("input[name=engine][value=local]").is_checked()
    assert dialog.locator("select[name=model]").input_value() == "htdemucs"
    assert dialog.locator("[data-stem-choices] input").count() == 4
    dialog.locator("summary:has-text('Compare models')").click()
    shot(page, "separate-dialog")
    with page.expect_navigation():
        dialog.locator("button[type=submit]").dblclick()
    page.wait_for_load_state()

    # --- live progress without reloading ----------------------------------------
    page.evaluate("window.__noReload = 'still here'")
    status = page.locator("[data-track-card] [data-job-status]").first
    status.wait_for(state="visible")
    page.wait_for_selector("[data-track-card] [data-job-status][data-status='completed']",
                           timeout=120_000)
    assert page.evaluate("window.__noReload") == "still here"
    assert status.locator("[data-pct]").inner_text() == "100 %"
    shot(page, "library")

    track_id = card.get_attribute("data-track-id")
    jobs = page.request.get(f"{server}/api/tracks/{track_id}/jobs").json()["jobs"]
    assert len(jobs) == 1, "a double click on Separate must create one job"

    # --- track page: play all stems, mute and solo -----------------------------------
    status.locator("a:has-text('Listen')").click()
    page.wait_for_url(f"{server}/tracks/{track_id}*")
    player = page.locator("[data-player]").first
    page.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)
    # The four stems, then the original mix (muted) to compare them with.
    rows = player.locator("[data-stem]:not([data-original])")
    assert rows.count() == 4
    assert player.locator("[data-stem][data-original]").count() == 1
    loaded = [(rows.nth(i).get_attribute("data-loaded"), rows.nth(i).get_attribute("title"))
              for i in range(4)]
    assert all(state == "1" for state, _ in loaded), loaded
    player.locator("[data-play]").click()
    page.wait_for_selector("[data-player][data-state='playing']")
    page.wait_for_function(
        "Number(document.querySelector('[data-player]').dataset.position) > 0.3",
        polling=100,
    )
    vocals = player.locator("[data-stem][data-name='vocals']")
    drums = player.locator("[data-stem][data-name='drums']")
    vocals.locator("[data-mute]").click()
    assert vocals.get_attribute("data-gain") == "0.00"
    assert drums.get_attribute("data-gain") == "1.00"
    drums.locator("[data-solo]").click()
    gains = {rows.nth(i).get_attribute("data-name"): rows.nth(i).get_attribute("data-gain")
             for i in range(4)}
    assert gains == {"drums": "1.00", "vocals": "0.00", "bass": "0.00", "other": "0.00"}
    shot(page, "track")
    player.locator("[data-play]").click()
    page.wait_for_selector("[data-player][data-state='paused']")

    # --- download all stems as a ZIP ----------------------------------------------------
    with page.expect_download() as download_info:
        page.click("[data-zip-link]")
    archive = download_info.value.path()
    with zipfile.ZipFile(io.BytesIO(Path(archive).read_bytes())) as zf:
        names = sorted(Path(name).name for name in zf.namelist())
        assert names == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
        assert zf.testzip() is None
        assert zf.read(zf.namelist()[0])[:4] == b"RIFF"

    # --- settings: change the engine -------------------------------------------------------
    page.click("nav.nav >> text=Settings")
    page.wait_for_url(server + "/settings")
    shot(page, "settings")
    page.locator("#cloud label:has-text('LALAL.AI cloud')").click()
    page.click("button:has-text('Save cloud settings')")
    page.wait_for_selector(".alert-ok:has-text('Cloud separation settings saved')")
    assert page.locator("#cloud input[name=engine][value=lalalai]").is_checked()
    assert page.request.get(server + "/api/settings").json()["engine"] == "lalalai"

    # The Separate form now starts from the new engine.
    page.goto(f"{server}/tracks/{track_id}/separate")
    assert page.locator("input[name=engine][value=lalalai]").is_checked()
    shot(page, "separate-page")

    page.click("nav.nav >> text=API")
    page.wait_for_url(server + "/docs")
    assert page.locator("code:has-text('/api/tracks/{track_id}/separations')").count() >= 1
    shot(page, "api-docs")

    assert errors == [], f"JavaScript errors: {errors}"
    context.close()


def test_mobile_layout(server: str, browser) -> None:
    """The library and sign-in pages fit a phone screen (no sideways scrolling)."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(server + "/signup")
    page.fill("#email", "mobile@example.com")
    page.fill("#password", "correct horse battery")
    page.click("button:has-text('Create account')")
    page.wait_for_url(server + "/")
    shot(page, "library-mobile")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    context.close()


def test_long_separations_stream_instead_of_decoding(streaming_server: str, browser,
                                                     tmp_path: Path) -> None:
    """Above the decode limit the player streams each stem from an <audio>
    element (no whole-file decode in the browser), draws the server's peaks,
    and still plays, mutes, seeks and pauses all stems together."""
    server = streaming_server
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    # Count whole-file decodes: in stream mode there must be none.
    context.add_init_script("""
        window.__decodes = 0;
        const original = AudioContext.prototype.decodeAudioData;
        AudioContext.prototype.decodeAudioData = function (...args) {
            window.__decodes += 1;
            return original.apply(this, args);
        };
    """)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(20_000)

    page.goto(server + "/signup")
    page.fill("#email", "dj@example.com")
    page.fill("#password", "correct horse battery")
    page.click("button:has-text('Create account')")
    page.wait_for_url(server + "/")
    page.set_input_files("#upload-input", str(write_audio(tmp_path / "Long Mix.wav",
                                                         seconds=8.0)))
    page.wait_for_selector("[data-track-card]", timeout=30_000)
    card = page.locator("[data-track-card]").first
    card.locator("[data-open-separate]").click()
    with page.expect_navigation():
        page.locator("#separate-dialog button[type=submit]").click()
    page.wait_for_selector("[data-track-card] [data-job-status][data-status='completed']",
                           timeout=120_000)
    page.locator("[data-track-card] a:has-text('Listen')").first.click()
    page.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)

    player = page.locator("[data-player]").first
    assert player.get_attribute("data-mode") == "stream"
    rows = player.locator("[data-stem]")
    assert rows.count() == 5  # four stems and the original mix, all streamed
    page.wait_for_function(
        "[...document.querySelectorAll('[data-stem]')].every(r => r.dataset.peaks === '1')")
    assert [rows.nth(i).get_attribute("data-loaded") for i in range(5)] == ["1"] * 5
    # The server's peaks were drawn: opaque waveform pixels on every canvas.
    painted = page.evaluate("""[...document.querySelectorAll('[data-stem] canvas')].map(c => {
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 200) n++;
        return n;
    })""")
    assert all(count > 100 for count in painted), painted

    state = ("SoundForgePlayer.players[0].stems.map(s => "
             "({paused: s.audio.paused, time: s.audio.currentTime}))")
    player.locator("[data-play]").click()
    page.wait_for_selector("[data-player][data-state='playing']")
    page.wait_for_function(
        "Number(document.querySelector('[data-player]').dataset.position) > 0.3", polling=100)
    assert all(not stem["paused"] for stem in page.evaluate(state))

    vocals = player.locator("[data-stem][data-name='vocals']")
    vocals.locator("[data-mute]").click()
    assert vocals.get_attribute("data-gain") == "0.00"

    # Seek by clicking the middle of a waveform: every stem goes there together.
    wave = player.locator("[data-stem][data-name='drums'] [data-wave]")
    box = wave.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "Number(document.querySelector('[data-player]').dataset.position) >= 4.0", polling=100)
    times = [stem["time"] for stem in page.evaluate(state)]
    assert max(times) - min(times) < 0.15, times
    assert 3.9 <= min(times) <= 6.5, times

    player.locator("[data-play]").click()
    page.wait_for_selector("[data-player][data-state='paused']")
    assert all(stem["paused"] for stem in page.evaluate(state))
    assert page.evaluate("window.__decodes") == 0
    shot(page, "track-streaming")
    assert errors == [], f"JavaScript errors: {errors}"
    context.close()
