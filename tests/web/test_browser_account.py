"""Account safety in a real browser: a password change signs the other
browsers out, and "Log out everywhere" ends every session, at desktop and
phone width. What a person sees is checked, not only the DOM."""

from __future__ import annotations

import pytest

from tests.web.browser_support import shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

PASSWORD = "correct horse battery"


def signed_in(browser, server: str, email: str, width: int, *, sign_up: bool = False):
    context = browser.new_context(viewport={"width": width, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(server + ("/signup" if sign_up else "/login"))
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    return context, page


def visible_inside(page, selector: str, width: int) -> None:
    box = page.locator(selector).bounding_box()
    assert page.locator(selector).is_visible(), selector
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box)


@pytest.mark.parametrize("width", [1280, 390])
def test_password_change_and_log_out_everywhere(server: str, browser, width: int) -> None:
    email = f"account{width}@example.com"
    laptop, page = signed_in(browser, server, email, width, sign_up=True)
    phone, other = signed_in(browser, server, email, width)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(server + "/settings#account")
    section = page.locator("#account")
    section.scroll_into_view_if_needed()
    for selector in ("#current_password", "#new_password",
                     "#account button:has-text('Change password')",
                     "#account button:has-text('Log out everywhere')"):
        visible_inside(page, selector, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(page, f"settings-account-{width}")

    page.fill("#current_password", PASSWORD)
    page.fill("#new_password", "a brand new password")
    page.click("#account button:has-text('Change password')")
    page.wait_for_url(server + "/settings#account")
    assert page.get_by_text("Every other browser was signed out").is_visible()
    other.goto(server + "/")
    assert other.url.startswith(server + "/login")  # the other browser is out
    assert page.locator("h1").first.is_visible()  # and this one still in

    page.on("dialog", lambda dialog: dialog.accept())  # "Sign out of every browser…?"
    page.click("#account button:has-text('Log out everywhere')")
    page.wait_for_url(server + "/login")
    shot(page, f"logged-out-everywhere-{width}")
    page.goto(server + "/settings")
    assert page.url.startswith(server + "/login")
    assert errors == [], errors
    laptop.close()
    phone.close()

