"""Issue 15 in a real browser: what a person sees, at desktop and phone width.

Hidden things stay hidden, the Separate dialog (model change, two stems,
models on this machine, LALAL.AI choices and cost), the player (order,
complements, original mix, details line, preview → full track), one
separation's ZIP and delete, the batch, the key saved and tested, and the
phone layout (nothing clipped, nothing scrolls sideways, no keyboard hint on
a touch screen). Screenshots go to test-artifacts/screenshots/ (issue15-*).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audio import write_audio
from tests.support.fake_lalalai import FakeLalalai
from tests.web.browser_support import serve, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"


# ``server`` (conftest.py): the product with a worker and a tiny htdemucs, LALAL.AI faked.


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """No worker: jobs stay queued for as long as a test looks at them."""
    yield from serve(tmp_path_factory.mktemp("issue15-idle"), "--no-worker")


def new_page(browser, server: str, email: str, viewport: dict[str, int] = DESKTOP, **options):
    context = browser.new_context(viewport=viewport, accept_downloads=True, **options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # confirm() of delete buttons
    page.goto(server + "/signup")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Create account')")
    page.wait_for_url(server + "/")
    return page


def add_track(page, path: Path) -> str:
    before = page.locator("[data-track-card]").count()
    page.set_input_files("#upload-input", str(path))
    page.wait_for_function(f"document.querySelectorAll('[data-track-card]').length > {before}",
                           timeout=30_000)
    card = page.locator("[data-track-card]", has_text=path.stem).first
    return str(card.get_attribute("data-track-id"))


def wait_completed(page, track: str, timeout: float = 180_000) -> None:
    """Until the track's card shows its separation as completed, as the page updates it."""
    page.wait_for_selector(f"[data-track-id='{track}'] [data-job-status][data-status='completed']",
                           timeout=timeout)


def csrf(page) -> str:
    return str(page.locator('meta[name="csrf-token"]').get_attribute("content"))


def api(page, method: str, url: str, body: dict | None = None) -> dict:
    response = page.request.fetch(url, method=method, data=body,
                                  headers={"X-CSRF-Token": csrf(page),
                                           "Accept": "application/json"})
    assert response.ok, response.text()
    return response.json() if response.status != 204 else {}


def inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] - 0.5 and inner["y"] >= outer["y"] - 0.5
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)


# --- defect 1 -------------------------------------------------------------------------
def test_hidden_things_stay_hidden(idle_server: str, browser, tmp_path: Path) -> None:
    """`hidden` wins over the cards' flex layout: no "Listen" link on a job that
    has no stems, and the search box filters as the user types."""
    server = idle_server
    page = new_page(browser, server, "hidden@example.com")
    first = add_track(page, write_audio(tmp_path / "Morning Walk.wav", seconds=1.0))
    add_track(page, write_audio(tmp_path / "Evening Run.wav", seconds=1.0, seed=3))
    api(page, "POST", f"{server}/api/tracks/{first}/separations")
    page.reload()
    card = page.locator(f"[data-track-card][data-track-id='{first}']")
    status = card.locator("[data-job-status]")
    assert status.get_attribute("data-status") == "queued"
    assert status.is_visible()
    listen = card.locator("a:has-text('Listen')")
    assert listen.count() == 1 and not listen.is_visible()
    assert card.locator("[data-error]").is_hidden()
    shot(page, "issue15-library-queued")

    status.locator("[data-cancel] button").click()
    page.wait_for_selector(f"[data-track-id='{first}'] [data-job-status][data-status='cancelled']")
    assert not listen.is_visible()
    assert card.locator("[data-cancel]").is_hidden()

    page.fill("#q", "evening")
    page.wait_for_function("document.querySelector(\"[data-track-card]"
                           f"[data-track-id='{first}']\").hidden === true")
    assert not card.is_visible()
    assert page.locator("[data-track-card]:has-text('Evening Run')").is_visible()
    shot(page, "issue15-library-search")
    page.fill("#q", "")
    page.wait_for_function("[...document.querySelectorAll('[data-track-card]')]"
                           ".every(c => !c.hidden)")
    assert card.is_visible()
    assert page.errors == []
    page.context.close()


# --- defect 2, two stems, models on this machine ---------------------------------------
def test_separate_dialog_model_change_and_two_stems(server: str, browser,
                                                    tmp_path: Path) -> None:
    page = new_page(browser, server, "dialog@example.com")
    track = add_track(page, write_audio(tmp_path / "Karaoke Night.wav", seconds=3.0))
    page.locator(f"[data-track-id='{track}'] [data-open-separate]").click()
    dialog = page.locator("#separate-dialog")
    dialog.wait_for(state="visible")
    boxes = dialog.locator("[data-stem-choices] input")
    checked = "[...document.querySelectorAll('#separate-dialog [data-stem-choices] input')]" \
              ".filter(i => i.checked).map(i => i.value)"
    assert page.evaluate(checked) == ["vocals", "drums", "bass", "other"]  # musical order
    assert "Ready on this machine" in dialog.locator("[data-model-note]").inner_text()

    # A six-stem model ticks its six stems, guitar and piano included.
    dialog.locator("select[name=model]").select_option("htdemucs_6s")
    assert boxes.count() == 6
    assert sorted(page.evaluate(checked)) == ["bass", "drums", "guitar", "other", "piano",
                                              "vocals"]
    note = dialog.locator("[data-model-note]")
    assert "Not on this machine: separations with it fail" in note.inner_text()
    assert note.is_visible()
    option = dialog.locator("select[name=model] option[value=htdemucs_6s]")
    assert "not in the model repository" in option.inner_text()
    shot(page, "issue15-dialog-6s")
    dialog.locator("[data-stem-choices] input[value=piano]").uncheck()
    dialog.locator("select[name=model]").select_option("htdemucs")
    assert sorted(page.evaluate(checked)) == ["bass", "drums", "other", "vocals"]

    # Two stems: the boxes give way to "stem + everything else".
    dialog.locator("label:has-text('Two stems')").click()
    assert not dialog.locator("[data-stem-choices]").is_visible()
    two = dialog.locator("select[name=two_stems]")
    assert two.is_visible()
    two.select_option("vocals")
    assert dialog.locator("text=+ everything else").is_visible()
    shot(page, "issue15-dialog-two-stems")
    with page.expect_navigation():
        dialog.locator("button[type=submit]").click()
    wait_completed(page, track)
    (job,) = api(page, "GET", f"{server}/api/tracks/{track}/jobs")["jobs"]
    assert job["options"]["two_stems"] == "vocals"
    assert sorted(s["stem"] for s in job["stems"]) == ["no_vocals", "vocals"]

    # The player: the stem and the rest both play (they add up to the mix);
    # the original mix is there, muted, to compare.
    page.goto(f"{server}/tracks/{track}")
    page.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)
    rows = page.locator("[data-player] [data-stem]")
    names = [rows.nth(i).get_attribute("data-name") for i in range(rows.count())]
    assert names == ["vocals", "no_vocals", "original"]
    gains = {n: page.locator(f"[data-stem][data-name='{n}']").get_attribute("data-gain")
             for n in names}
    assert gains == {"vocals": "1.00", "no_vocals": "1.00", "original": "0.00"}
    original = page.locator("[data-stem][data-name='original']")
    assert original.locator("[data-mute]").get_attribute("aria-pressed") == "true"
    assert original.get_attribute("data-loaded") == "1"
    original.locator("[data-solo]").click()  # A/B: the original alone
    assert original.get_attribute("data-gain") == "1.00"
    assert page.locator("[data-stem][data-name='vocals']").get_attribute("data-gain") == "0.00"
    shot(page, "issue15-track-two-stems")
    assert page.errors == []
    page.context.close()


# --- LALAL.AI choices, cost, complements, details line, preview → full ------------------
def test_lalalai_choices_cost_and_the_player(server: str, browser, tmp_path: Path,
                                             fake_lalalai: FakeLalalai) -> None:
    page = new_page(browser, server, "cloud@example.com")
    track = add_track(page, write_audio(tmp_path / "Cloud Song.wav", seconds=4.0))
    fake_lalalai.set_minutes(0.25)
    api(page, "PATCH", f"{server}/api/settings", {"lalalai_api_key": fake_lalalai.key})
    page.reload()
    page.locator(f"[data-track-id='{track}'] [data-open-separate]").click()
    dialog = page.locator("#separate-dialog")
    dialog.locator("label:has-text('LALAL.AI cloud')").click()
    assert dialog.locator("select[name=splitter]").is_visible()
    assert dialog.locator("select[name=extraction_level]").is_visible()
    assert not dialog.locator("label:has-text('Two stems')").is_visible()
    cost = dialog.locator("[data-cost]")
    # 4 s × 1 stem (vocals) = 0.07 min, against 0.25 left.
    page.wait_for_function("document.querySelector('#separate-dialog [data-cost]')"
                           ".textContent.includes('Costs about')")
    assert "0.07 min (4 s × 1 stem) · 0.25 min left" in cost.inner_text()
    for stem in ("drums", "bass", "piano"):
        dialog.locator(f"[data-stem-choices] input[value={stem}]").check()
    page.wait_for_function("document.querySelector('#separate-dialog [data-cost]')"
                           ".textContent.includes('Not enough')")
    assert "needs 0.27 min (4 s × 4 stems), 0.25 min left" in cost.inner_text()
    assert dialog.locator("button[type=submit]").is_disabled()
    shot(page, "issue15-dialog-lalalai-over")
    for stem in ("bass", "piano"):
        dialog.locator(f"[data-stem-choices] input[value={stem}]").uncheck()
    dialog.locator("select[name=splitter]").select_option("perseus")
    dialog.locator("input[name=preview]").check()
    page.wait_for_function("document.querySelector('#separate-dialog [data-cost]')"
                           ".textContent.includes('Costs about')")
    assert dialog.locator("button[type=submit]").is_enabled()
    shot(page, "issue15-dialog-lalalai")
    with page.expect_navigation():
        dialog.locator("button[type=submit]").click()
    wait_completed(page, track)
    (preview,) = api(page, "GET", f"{server}/api/tracks/{track}/jobs")["jobs"]
    assert preview["options"]["splitter"] == "perseus" and preview["options"]["preview"]

    page.goto(f"{server}/tracks/{track}")
    page.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)
    rows = page.locator("[data-player] [data-stem]")
    names = [rows.nth(i).get_attribute("data-name") for i in range(rows.count())]
    # Musical order; the complement (one multistem task: "rest") apart and
    # muted: Play sums the stems only.
    assert names == ["vocals", "drums", "rest", "original"]
    gains = [rows.nth(i).get_attribute("data-gain") for i in range(rows.count())]
    assert gains == ["1.00", "1.00", "0.00", "0.00"]
    group = page.locator("[data-stem-group='complements']")
    assert group.is_visible() and "muted" in group.inner_text().lower()
    card = page.locator(f"[data-job-card='{preview['id']}']")
    head = card.locator(".job-card-head")
    details = card.locator("[data-job-details]")
    for task_id in preview["provider_task_ids"]:
        assert task_id not in head.inner_text()
        assert task_id in details.inner_text()
    assert details.is_visible()
    shot(page, "issue15-track-lalalai")

    # One click from the finished preview to the full track, same settings.
    fake_lalalai.set_minutes(10.0)
    with page.expect_navigation():
        card.locator("button:has-text('Separate the full track')").click()
    jobs = api(page, "GET", f"{server}/api/tracks/{track}/jobs")["jobs"]
    full = jobs[0]
    assert full["id"] != preview["id"] and full["options"]["preview"] is False
    assert full["options"]["splitter"] == "perseus"
    assert sorted(full["options"]["stems"]) == ["drums", "vocals"]
    assert page.errors == []
    page.context.close()


# --- one separation's ZIP and delete; batch --------------------------------------------
def test_zip_and_delete_one_separation_and_batch(server: str, browser, tmp_path: Path) -> None:
    page = new_page(browser, server, "batch@example.com")
    tracks = [add_track(page, write_audio(tmp_path / f"Batch {n}.wav", seconds=2.0, seed=n))
              for n in range(2)]
    boxes = page.locator("[data-select-track]")
    bar = page.locator("[data-batch-bar]")
    assert not bar.is_visible()
    boxes.nth(0).check()
    boxes.nth(1).check()
    assert bar.is_visible() and "2 selected" in bar.inner_text()
    shot(page, "issue15-library-batch")
    bar.locator("[data-batch-separate]").click()
    dialog = page.locator("#separate-dialog")
    dialog.wait_for(state="visible")
    assert "2 selected tracks" in dialog.inner_text()
    dialog.locator("[data-stem-choices] input[value=other]").uncheck()
    with page.expect_navigation():
        dialog.locator("button[type=submit]").click()
    assert page.locator(".alert-ok:has-text('Started 2 separations.')").is_visible()
    for track in tracks:
        page.wait_for_selector(f"[data-track-id='{track}'] [data-job-status]"
                               "[data-status='completed']", timeout=120_000)
        (job,) = api(page, "GET", f"{server}/api/tracks/{track}/jobs")["jobs"]
        assert sorted(job["options"]["stems"]) == ["bass", "drums", "vocals"]

    # A second run of the first track, then that one separation's ZIP and delete.
    api(page, "POST", f"{server}/api/tracks/{tracks[0]}/separations", {"force": True})
    page.goto(f"{server}/tracks/{tracks[0]}")
    page.wait_for_function("document.querySelectorAll('[data-job-card] [data-player]').length"
                           " === 2", timeout=120_000)
    cards = page.locator("[data-job-card]")
    newest = str(cards.first.get_attribute("data-job-card"))
    with page.expect_download() as download_info:
        cards.first.locator("[data-job-zip]").click()
    data = Path(download_info.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(Path(n).name for n in archive.namelist()) == [
            "bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    with page.expect_navigation():
        cards.first.locator("[data-job-delete]").click()
    assert page.locator(".alert-ok:has-text('Separation deleted')").is_visible()
    assert page.locator(f"[data-job-card='{newest}']").count() == 0
    assert page.locator("[data-job-card]").count() == 1
    shot(page, "issue15-track-after-delete")
    assert page.errors == []
    page.context.close()


# --- defect 6 -------------------------------------------------------------------------
def test_saving_a_key_says_the_result_at_the_top(server: str, browser,
                                                 fake_lalalai: FakeLalalai) -> None:
    page = new_page(browser, server, "keys@example.com")
    fake_lalalai.unknown_key_answer = (400, {"detail": "License key is invalid."})
    page.goto(server + "/settings")
    page.fill("#lalalai_api_key", "not-a-valid-key")
    page.click("button:has-text('Save cloud settings')")
    banner = page.locator(".alert-error[data-key-error]")
    assert banner.is_visible()
    assert "Nothing was saved. LALAL.AI refused the license key" in banner.inner_text()
    assert page.locator(".alert-ok").count() == 0
    top = banner.bounding_box()
    section = page.locator("#demucs").bounding_box()
    assert top is not None and section is not None and top["y"] < section["y"]
    shot(page, "issue15-settings-key-refused")

    # A good key tested afterwards: the stale error goes, the minutes show.
    fake_lalalai.set_minutes(33.5)
    page.fill("#lalalai_api_key", fake_lalalai.key)
    page.click("[data-test-key]")
    page.wait_for_selector("[data-test-result]:has-text('Key works')")
    assert not banner.is_visible()
    assert page.locator("[data-remaining]").inner_text() == "33.5"
    page.click("button:has-text('Save cloud settings')")
    ok = page.locator(".alert-ok")
    assert ok.is_visible() and "The key works: 33.5 minutes left." in ok.inner_text()
    assert page.locator(".alert-error").count() == 0
    shot(page, "issue15-settings-key-saved")
    assert page.errors == []
    page.context.close()


# --- defect 5 -------------------------------------------------------------------------
OVERFLOW = """() => {
    const width = window.innerWidth;
    const out = [...document.querySelectorAll('body *')].filter(el => {
        const box = el.getBoundingClientRect();
        if (!box.width || getComputedStyle(el).visibility === 'hidden') return false;
        // Inside a box that scrolls or clips on its own, overflow is by design.
        for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
            const style = getComputedStyle(p);
            if (/(auto|scroll|hidden|clip)/.test(style.overflowX)) return false;
        }
        return box.right > width + 0.5 || box.left < -0.5;
    });
    return {scroll: document.documentElement.scrollWidth, width,
            out: out.slice(0, 5).map(el => el.tagName + '.' + el.className + ' ' +
                 Math.round(el.getBoundingClientRect().right))};
}"""


def no_sideways_scroll(page) -> None:
    found = page.evaluate(OVERFLOW)
    assert found["scroll"] <= found["width"] and not found["out"], (page.url, found)


def test_phone_width(server: str, browser, tmp_path: Path) -> None:
    """390 px: cards keep their buttons inside, no page scrolls sideways."""
    page = new_page(browser, server, "phone@example.com", PHONE)
    track = add_track(page, write_audio(tmp_path / "A Rather Long Song Title For A Phone.wav",
                                        seconds=2.0))
    card = page.locator(f"[data-track-card][data-track-id='{track}']").bounding_box()
    assert card is not None
    for selector in ("[data-open-separate]", "form[data-confirm] button", "[data-select-track]"):
        box = page.locator(f"[data-track-id='{track}'] {selector}").bounding_box()
        assert box is not None and inside(box, card), (selector, box, card)
    no_sideways_scroll(page)
    shot(page, "issue15-phone-library")
    page.locator(f"[data-track-id='{track}'] [data-select-track]").check()
    bar = page.locator("[data-batch-bar]")
    assert bar.is_visible()
    no_sideways_scroll(page)
    shot(page, "issue15-phone-batch")
    bar.locator("[data-batch-clear]").click()
    assert not bar.is_visible()

    page.locator(f"[data-track-id='{track}'] [data-open-separate]").click()
    dialog = page.locator("#separate-dialog")
    dialog.wait_for(state="visible")
    no_sideways_scroll(page)
    shot(page, "issue15-phone-dialog")
    dialog.locator("label:has-text('Two stems')").click()
    no_sideways_scroll(page)
    dialog.locator("label:has-text('LALAL.AI cloud')").click()
    page.wait_for_function("document.querySelector('#separate-dialog [data-cost]')"
                           ".textContent.includes('Costs about')")
    no_sideways_scroll(page)
    shot(page, "issue15-phone-dialog-lalalai")
    dialog.locator("label:has-text('Local')").click()
    dialog.locator("label:has-text('Separate stems')").first.click()
    with page.expect_navigation():
        page.locator("#separate-dialog button[type=submit]").click()
    wait_completed(page, track)

    for path in ("/docs", f"/tracks/{track}", "/settings", f"/tracks/{track}/separate"):
        page.goto(server + path)
        page.wait_for_load_state()
        if path == f"/tracks/{track}":
            page.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)
        no_sideways_scroll(page)
        shot(page, "issue15-phone" + path.replace("/", "-").replace(track, "track"))
    assert page.errors == []
    page.context.close()

    # A touch screen has no Space bar to press: no keyboard hint there.
    touch = new_page(browser, server, "touch@example.com", PHONE, has_touch=True,
                     is_mobile=True)
    song = add_track(touch, write_audio(tmp_path / "Touch.wav", seconds=1.0))
    api(touch, "POST", f"{server}/api/tracks/{song}/separations")
    touch.wait_for_selector(f"[data-track-id='{song}'] [data-job-status]"
                            "[data-status='completed']", timeout=120_000)
    touch.goto(f"{server}/tracks/{song}")
    touch.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)
    status = touch.locator("[data-player-status]").inner_text()
    assert status.startswith("Ready") and "Space" not in status
    touch.context.close()


def test_keyboard_hint_on_a_desktop(server: str, browser, tmp_path: Path) -> None:
    page = new_page(browser, server, "desk@example.com")
    track = add_track(page, write_audio(tmp_path / "Desk.wav", seconds=1.0))
    api(page, "POST", f"{server}/api/tracks/{track}/separations")
    wait_completed(page, track)
    page.goto(f"{server}/tracks/{track}")
    page.wait_for_selector("[data-player][data-state='ready']", timeout=30_000)
    assert "Space plays and pauses" in page.locator("[data-player-status]").inner_text()
    page.context.close()
