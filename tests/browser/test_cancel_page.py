"""Cancelling from the live page in real Chromium: in place with the script, and without it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.pages import start
from tests.browser.support import EndsHeld, Server

pytestmark = pytest.mark.browser

DURATION = "Duration (seconds)"


def test_cancel_shows_cancelling_at_once_then_cancelled_in_place(
    site: Server, open_page: Any
) -> None:
    page = open_page("alice")
    ends = EndsHeld(page)  # or the end could replace "Cancelling…" before it is seen
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "20"})
    expect(live.region("status")).to_contain_text("In progress", timeout=15_000)
    page.evaluate("window.__liveopsTestMarker = 'still here'")

    page.get_by_role("button", name="Cancel").click()
    expect(live.region("notice")).to_have_text("Cancelling…", timeout=5_000)
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    ends.release()
    expect(live.region("status")).to_contain_text("Cancelled", timeout=15_000)
    expect(live.region("result")).to_contain_text("The operation was cancelled.")
    expect(live.region("notice")).to_have_text("")
    expect(live.region("stages")).to_contain_text("(cancelled)")
    assert page.evaluate("window.__liveopsTestMarker") == "still here", "the page reloaded"


def test_cancel_works_without_javascript(site: Server, open_page: Any) -> None:
    page = open_page("alice")  # starts the operation; the form posts and redirects
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "20"})
    expect(live.region("status")).to_contain_text("In progress", timeout=15_000)

    plain = open_page("alice", javascript=False)
    plain.goto(page.url)
    plain.get_by_role("button", name="Cancel").click()
    plain.wait_for_url(page.url)
    # Rendered from the database, so "Cancelling…", or the end if the run saw the cancel
    # before this page was rendered: both say the cancel was taken.
    taken = plain.locator(".liveops-notice-text").or_(
        plain.locator(".liveops-status", has_text="Cancelled")
    )
    expect(taken.first).to_contain_text(re.compile(r"Cancelling…|Cancelled"))
    expect(plain.get_by_role("button", name="Cancel")).to_have_count(0)
    # The page with the script, watching the same operation, sees the end live.
    expect(live.region("status")).to_contain_text("Cancelled", timeout=15_000)
    plain.reload()
    expect(plain.locator(".liveops-status")).to_contain_text("Cancelled")


def test_run_again_starts_a_new_attempt_in_place(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "4"})
    expect(live.region("status")).to_contain_text("In progress", timeout=15_000)
    expect(page.get_by_role("button", name="Run again")).to_be_hidden()
    page.get_by_role("button", name="Cancel").click()
    expect(live.region("status")).to_contain_text("Cancelled", timeout=15_000)
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    page.evaluate("window.__liveopsTestMarker = 'still here'")

    page.get_by_role("button", name="Run again").click()
    expect(live.region("status")).to_have_attribute("data-liveop-attempt", "2")
    expect(live.region("result")).not_to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    expect(live.region("result")).to_contain_text("Import finished", timeout=30_000)
    expect(live.region("stages")).to_contain_text("3 of 3 stages done")
    expect(page.get_by_role("button", name="Run again")).to_be_visible()
    assert page.evaluate("window.__liveopsTestMarker") == "still here", "the page reloaded"
