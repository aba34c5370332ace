"""The RoFormer models in a real browser: the Separate dialog's picker (stems
follow the model, ready or what it needs), a karaoke job run by the worker,
and its stems in the player — at desktop and at phone width. Screenshots go
to test-artifacts/screenshots/ (issue14-*)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.audio import write_audio
from tests.web.browser_support import shot
from tests.web.test_browser_ui import (
    PHONE,
    add_track,
    api,
    new_page,
    no_sideways_scroll,
    wait_completed,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

CHECKED = ("[...document.querySelectorAll('#separate-dialog [data-stem-choices] input')]"
           ".filter(i => i.checked).map(i => i.value)")


@pytest.fixture
def server(models_server: str) -> str:
    """conftest.py's server whose model repository holds htdemucs and the karaoke
    RoFormer (and the models of ensemble_six_stems, not used here); its player
    streams the stems (test_browser.py's streaming test checks that mode)."""
    return models_server


def test_picking_a_roformer_model_and_playing_its_stems(server: str, browser,
                                                        tmp_path: Path) -> None:
    page = new_page(browser, server, "roformer@example.com")
    track = add_track(page, write_audio(tmp_path / "Sing Along.wav", seconds=2.0))
    page.locator(f"[data-track-id='{track}'] [data-open-separate]").click()
    dialog = page.locator("#separate-dialog")
    dialog.wait_for(state="visible")
    select = dialog.locator("select[name=model]")
    note = dialog.locator("[data-model-note]")

    # A RoFormer model that is not here says so; its six stems replace the four.
    select.select_option("bs_roformer_6s")
    assert sorted(page.evaluate(CHECKED)) == ["bass", "drums", "guitar", "other", "piano",
                                              "vocals"]
    assert note.is_visible() and "Not on this machine" in note.inner_text()
    assert "not in the model repository" in select.locator(
        "option[value=bs_roformer_6s]").inner_text()

    # The karaoke model is ready: two stems, lead vocals and the rest.
    select.select_option("mel_roformer_karaoke")
    assert page.evaluate(CHECKED) == ["vocals", "other"]
    assert note.inner_text() == "Ready on this machine."
    box = dialog.bounding_box()
    assert box is not None and box["width"] > 300
    shot(page, "issue14-dialog-karaoke")
    dialog.locator("label:has-text('Two stems')").click()
    dialog.locator("select[name=two_stems]").select_option("vocals")
    with page.expect_navigation():
        dialog.locator("button[type=submit]").click()
    wait_completed(page, track)
    (job,) = api(page, "GET", f"{server}/api/tracks/{track}/jobs")["jobs"]
    assert job["options"]["model"] == "mel_roformer_karaoke"
    assert sorted(s["stem"] for s in job["stems"]) == ["no_vocals", "vocals"]

    page.goto(f"{server}/tracks/{track}")
    page.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)
    rows = page.locator("[data-player] [data-stem]")
    names = [rows.nth(i).get_attribute("data-name") for i in range(rows.count())]
    assert names == ["vocals", "no_vocals", "original"]
    assert all(rows.nth(i).is_visible() for i in range(rows.count()))
    shot(page, "issue14-player-karaoke")
    assert page.errors == []
    page.context.close()

    # At phone width the long model names fit: nothing scrolls sideways.
    phone = new_page(browser, server, "roformer-phone@example.com", PHONE)
    song = add_track(phone, write_audio(tmp_path / "Phone.wav", seconds=1.0))
    phone.locator(f"[data-track-id='{song}'] [data-open-separate]").click()
    phone_dialog = phone.locator("#separate-dialog")
    phone_dialog.wait_for(state="visible")
    phone_dialog.locator("select[name=model]").select_option("mel_roformer_karaoke")
    no_sideways_scroll(phone)
    model_box = phone_dialog.locator("select[name=model]").bounding_box()
    assert model_box is not None and model_box["x"] + model_box["width"] <= PHONE["width"]
    shot(phone, "issue14-phone-dialog-karaoke")
    assert phone.errors == []
    phone.context.close()
