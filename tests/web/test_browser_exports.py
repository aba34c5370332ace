"""The export panel under the player, in a real browser (Chromium through
Playwright against ``soundforge serve`` with a tiny model), at desktop width
and at 390 px. The downloads are read back with ffmpeg/ffprobe."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.export.conftest import ffmpeg_decode, ffprobe, needs_ffmpeg
from tests.support.audio import write_audio
from tests.web.browser_support import shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser"),
              needs_ffmpeg]


def _visible_inside(locator, outer: dict) -> None:
    """Shown, with a size, and wholly inside ``outer`` (a bounding box)."""
    assert locator.is_visible()
    box = locator.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    assert box["x"] >= outer["x"] - 0.5, (box, outer)
    assert box["x"] + box["width"] <= outer["x"] + outer["width"] + 0.5, (box, outer)


def _separated_track(page, server: str, tmp_path: Path) -> str:
    page.goto(server + "/signup")
    page.fill("#email", "dj@example.com")
    page.fill("#password", "correct horse battery")
    page.click("button:has-text('Create account')")
    page.wait_for_url(server + "/")
    song = write_audio(tmp_path / "Night Drive.wav", seconds=3.0)
    page.set_input_files("#upload-input", str(song))
    page.wait_for_selector("[data-track-card]", timeout=30_000)
    card = page.locator("[data-track-card]").first
    card.locator("[data-open-separate]").click()
    dialog = page.locator("#separate-dialog")
    dialog.wait_for(state="visible")
    with page.expect_navigation():
        dialog.locator("button[type=submit]").click()
    page.wait_for_selector("[data-track-card] [data-job-status][data-status='completed']",
                           timeout=120_000)
    return card.get_attribute("data-track-id")


def test_export_panel_renders_what_the_player_plays(server: str, browser,
                                                    tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    track_id = _separated_track(page, server, tmp_path)

    page.goto(f"{server}/tracks/{track_id}")
    page.wait_for_selector("[data-player][data-state='ready']")
    panel = page.locator("[data-export-panel]").first
    mix_button = panel.locator("[data-export-current]")
    ni_link = panel.locator("[data-export-nistems]")
    presets = panel.locator("[data-export-preset]")
    for locator in (mix_button, ni_link, *[presets.nth(i) for i in range(presets.count())]):
        _visible_inside(locator, panel.bounding_box())
    assert mix_button.inner_text().strip() == "Export this mix"
    assert ni_link.inner_text().strip() == "Download for DJ software (NI Stems)"
    assert [presets.nth(i).inner_text() for i in range(presets.count())] == [
        "Instrumental", "A cappella", "Drumless", "Bassless"]

    # Set the player: vocals muted, drums at half volume, master at 80 %.
    player = page.locator("[data-player]").first
    player.locator("[data-stem][data-name='vocals'] [data-mute]").click()
    player.locator("[data-stem][data-name='drums'] [data-volume]").fill("50")
    player.locator("[data-master]").fill("80")
    assert player.locator("[data-stem][data-name='drums']").get_attribute("data-gain") == "0.50"
    shot(page, "track-exports")

    stems = {}
    for name in ("drums", "bass", "other", "vocals"):
        src = player.locator(f"[data-stem][data-name='{name}']").get_attribute("data-src")
        (tmp_path / f"{name}.wav").write_bytes(page.request.get(server + src).body())
        stems[name] = sf.read(str(tmp_path / f"{name}.wav"), dtype="float32")[0]

    with page.expect_download() as info:
        mix_button.click()
    download = info.value
    assert download.suggested_filename == "Night Drive (mix).wav"
    download.save_as(tmp_path / "mix.wav")
    expected = 0.8 * (0.5 * stems["drums"] + stems["bass"] + stems["other"])
    np.testing.assert_allclose(ffmpeg_decode(tmp_path / "mix.wav"), expected,
                               atol=1.01 / 32768)

    # Solo beats mute, in the player and in the file: the muted vocals, soloed,
    # are all that sounds.
    player.locator("[data-stem][data-name='vocals'] [data-solo]").click()
    gains = {name: player.locator(f"[data-stem][data-name='{name}']").get_attribute("data-gain")
             for name in stems}
    assert gains == {"drums": "0.00", "bass": "0.00", "other": "0.00", "vocals": "1.00"}
    with page.expect_download() as info:
        mix_button.click()
    info.value.save_as(tmp_path / "solo.wav")
    np.testing.assert_allclose(ffmpeg_decode(tmp_path / "solo.wav"), 0.8 * stems["vocals"],
                               atol=1.01 / 32768)

    # A preset ignores the player's state: the whole mix without vocals.
    panel.locator("select[name=format]").select_option("flac")
    with page.expect_download() as info:
        presets.filter(has_text="Instrumental").click()
    assert info.value.suggested_filename == "Night Drive (instrumental).flac"
    info.value.save_as(tmp_path / "instrumental.flac")
    np.testing.assert_allclose(ffmpeg_decode(tmp_path / "instrumental.flac"),
                               stems["drums"] + stems["bass"] + stems["other"],
                               atol=1.01 / 32768)

    with page.expect_download() as info:
        ni_link.click()
    assert info.value.suggested_filename == "Night Drive.stem.mp4"
    info.value.save_as(tmp_path / "dj.stem.mp4")
    audio = [s for s in ffprobe(tmp_path / "dj.stem.mp4")["streams"]
             if s["codec_type"] == "audio"]
    assert len(audio) == 5

    # --- the same page on a phone -------------------------------------------------------
    phone = browser.new_context(viewport={"width": 390, "height": 844},
                                storage_state=context.storage_state())
    mobile = phone.new_page()
    mobile.on("pageerror", lambda exc: errors.append(str(exc)))
    mobile.goto(f"{server}/tracks/{track_id}")
    mobile.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)
    panel = mobile.locator("[data-export-panel]").first
    panel.scroll_into_view_if_needed()
    panel_box = panel.bounding_box()
    assert panel_box["x"] >= 0 and panel_box["x"] + panel_box["width"] <= 390
    phone_presets = [panel.locator("[data-export-preset]").nth(i) for i in range(4)]
    for locator in (panel.locator("[data-export-current]"),
                    panel.locator("[data-export-nistems]"),
                    panel.locator("select[name=format]"), *phone_presets):
        _visible_inside(locator, panel_box)
    # The presets share rows rather than each taking a line of its own.
    tops = {round(p.bounding_box()["y"]) for p in phone_presets}
    assert len(tops) < 4, tops
    # What sticks out, if anything, so a failure names it.
    wide = mobile.evaluate("""Array.from(document.querySelectorAll('body *'))
        .filter((el) => el.getBoundingClientRect().right > 390.5)
        .map((el) => `${el.tagName}.${el.className}`)""")
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 390, wide
    shot(mobile, "track-exports-mobile")

    # Settings → Exports on the phone: the ZIP's file-name template.
    mobile.goto(f"{server}/settings#exports")
    section = mobile.locator("#exports")
    field = section.locator("#filename_template")
    _visible_inside(field, section.bounding_box())
    field.fill("{track}/{stem}.{ext}")
    section.locator("button:has-text('Save export settings')").click()
    mobile.wait_for_selector(".alert-ok:has-text('Export settings saved')")
    assert mobile.locator("#filename_template").input_value() == "{track}/{stem}.{ext}"
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
    # Every section of the side navigation is in view, Exports included.
    links = mobile.locator(".side-nav a")
    assert links.count() == 5  # Demucs, Cloud, Exports, API tokens, Account
    for i in range(links.count()):
        _visible_inside(links.nth(i), {"x": 0, "width": 390})
    shot(mobile, "settings-exports-mobile")
    phone.close()
    with page.expect_download() as info:
        page.goto(f"{server}/tracks/{track_id}")
        page.click("[data-zip-link]")
    with zipfile.ZipFile(info.value.path()) as archive:
        assert sorted(archive.namelist()) == [
            f"Night Drive/{stem}.wav" for stem in ("bass", "drums", "other", "vocals")]

    assert errors == [], f"JavaScript errors: {errors}"
    context.close()
