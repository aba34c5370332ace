"""The product in a real browser: Debian's Chromium driven by Playwright against
``soundforge serve`` (real Uvicorn, real embedded worker, tiny Demucs models).
The browser and the plain server are conftest.py's, shared by the browser tests.

Screenshots of every page go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.support.audio import write_audio
from tests.web.browser_support import shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]


@pytest.fixture
def streaming_server(models_server: str) -> str:
    """conftest.py's server whose player streams every separation (decode limit
    0 minutes); its default model is htdemucs, like ``server``'s."""
    return models_server


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
