"""Ensemble presets in a real browser: seen in the model picker at desktop and
phone width, explained when chosen, separated by the worker, and offered as
the default in the settings. Screenshots: test-artifacts/screenshots/ensembles-*."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundforge.engines.local.ensemble import PRESETS
from tests.support.audio import write_audio
from tests.web.browser_support import shot
from tests.web.test_browser_ui import (
    DESKTOP,
    PHONE,
    add_track,
    api,
    inside,
    new_page,
    no_sideways_scroll,
    wait_completed,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

ENSEMBLE_GROUP = "optgroup[label='Ensembles (several models combined)']"


@pytest.fixture
def server(models_server: str) -> str:
    """conftest.py's server with tiny htdemucs, htdemucs_ft and htdemucs_6s (and a
    RoFormer): ensemble_six_stems is ready, the presets with mdx_extra are not."""
    return models_server


def open_dialog(page, track: str):
    page.locator(f"[data-track-id='{track}'] [data-open-separate]").click()
    dialog = page.locator("#separate-dialog")
    dialog.wait_for(state="visible")
    return dialog


def show_picker_open(page, name: str) -> None:
    """A native drop-down is not painted in screenshots: show the picker as a
    list box for the picture, as a person sees it opened, then close it."""
    select = "#separate-dialog select[name=model]"
    page.evaluate(f"document.querySelector(\"{select}\").size = 12")
    shot(page, name)
    page.evaluate(f"document.querySelector(\"{select}\").size = 0")


@pytest.mark.parametrize(("viewport", "label"), [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_presets_are_seen_in_the_picker_and_explained(
    server: str, browser, tmp_path: Path, viewport: dict[str, int], label: str
) -> None:
    page = new_page(browser, server, f"ensembles-{label}@example.com", viewport)
    track = add_track(page, write_audio(tmp_path / "Ensemble Song.wav", seconds=2.0))
    dialog = open_dialog(page, track)
    picker = dialog.locator("select[name=model]")
    options = picker.locator(f"{ENSEMBLE_GROUP} option")
    assert options.count() == len(PRESETS)
    texts = [options.nth(i).inner_text() for i in range(options.count())]
    for name, text in zip(PRESETS, texts, strict=True):
        assert text.startswith(f"{name} · ")
    assert "ensemble_six_stems · 6 stems · ready" in texts
    assert "ensemble_average · 4 stems · not in the model repository" in texts
    assert "ensemble_vocals_max · 1 stem · not in the model repository" in texts

    # Opened, the picker shows the presets under their own heading.
    page.locator("#separate-dialog select[name=model]").scroll_into_view_if_needed()
    show_picker_open(page, f"ensembles-{label}-picker-open")
    box = picker.bounding_box()
    dialog_box = dialog.bounding_box()
    assert box is not None and dialog_box is not None and inside(box, dialog_box)

    # Chosen: its stems, the fact it is ready, and what it combines and why.
    note = dialog.locator("[data-ensemble-note]")
    assert not note.is_visible()
    picker.select_option("ensemble_six_stems")
    assert dialog.locator("[data-stem-choices] input").count() == 6
    assert "Ready on this machine" in dialog.locator("[data-model-note]").inner_text()
    assert note.is_visible()
    about = note.inner_text()
    assert about.startswith("average of htdemucs_ft + htdemucs_6s: ")
    assert PRESETS["ensemble_six_stems"].rationale in about
    note_box = note.bounding_box()
    assert note_box is not None and inside(note_box, dialog_box)
    assert note_box["height"] > 10
    no_sideways_scroll(page)
    shot(page, f"ensembles-{label}-dialog")

    # A preset that needs models this machine lacks says so.
    picker.select_option("ensemble_vocals_max")
    assert dialog.locator("[data-stem-choices] input").count() == 1
    assert "Not on this machine" in dialog.locator("[data-model-note]").inner_text()
    assert "max-spec of htdemucs_ft + mdx_extra" in note.inner_text()
    picker.select_option("htdemucs")
    assert not note.is_visible()

    # The settings offer them as the default model, within the page's width.
    page.goto(server + "/settings")
    setting = page.locator("#demucs_model")
    assert setting.locator(f"{ENSEMBLE_GROUP} option").count() == len(PRESETS)
    setting_box = setting.bounding_box()
    assert setting_box is not None and setting_box["width"] > 100
    assert setting_box["x"] + setting_box["width"] <= viewport["width"]
    no_sideways_scroll(page)
    shot(page, f"ensembles-{label}-settings")
    assert page.errors == []
    page.context.close()


def test_a_preset_separates_and_becomes_the_default(server: str, browser,
                                                    tmp_path: Path) -> None:
    page = new_page(browser, server, "ensemble-run@example.com")
    track = add_track(page, write_audio(tmp_path / "Six Parts.wav", seconds=2.0))
    dialog = open_dialog(page, track)
    dialog.locator("select[name=model]").select_option("ensemble_six_stems")
    with page.expect_navigation():
        dialog.locator("button[type=submit]").click()
    wait_completed(page, track)
    (job,) = api(page, "GET", f"{server}/api/tracks/{track}/jobs")["jobs"]
    assert job["model"] == "ensemble_six_stems"
    assert sorted(s["stem"] for s in job["stems"]) == [
        "bass", "drums", "guitar", "other", "piano", "vocals"]

    # Settings: the preset as the default model, and the form starts from it.
    page.goto(server + "/settings")
    setting = page.locator("#demucs_model")
    assert setting.locator(f"{ENSEMBLE_GROUP} option").count() == len(PRESETS)
    setting.select_option("ensemble_six_stems")
    page.locator("#demucs button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#demucs_model").input_value() == "ensemble_six_stems"
    shot(page, "ensembles-settings")
    assert api(page, "GET", f"{server}/api/settings")["demucs_model"] == "ensemble_six_stems"
    page.goto(f"{server}/tracks/{track}/separate")
    assert page.locator("select[name=model]").input_value() == "ensemble_six_stems"
    note = page.locator("[data-ensemble-note]")
    assert note.is_visible() and "htdemucs_6s" in note.inner_text()
    assert page.errors == []
    page.context.close()
