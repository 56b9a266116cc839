"""The operations list in real Chromium, against the demo: new rows and states arrive live."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.axe import assert_accessible
from tests.browser.pages import start
from tests.browser.support import Server

pytestmark = pytest.mark.browser

DURATION = "Duration (seconds)"
LIST_PATH = "/operations/demo.longimport/"

# Every row a list page applies, with the words of its state cell, in order.
ROW_RECORDER = """() => {
  window.__rowsSeen = [];
  document.addEventListener("liveops:row", (event) => {
    const row = document.getElementById("liveop-row-" + event.detail.op.split(":")[1]);
    const cell = row && row.querySelector(".liveops-row-state");
    window.__rowsSeen.push({op: event.detail.op, state: cell ? cell.textContent.trim() : null});
  });
}"""


def open_list(open_page: Any, site: Server, user: str) -> Any:
    """Open ``user``'s list of long imports and wait until it is live."""
    page = open_page(user)
    page.goto(f"{site.url}{LIST_PATH}")
    page.evaluate(ROW_RECORDER)
    expect(page.locator(".liveops-list-connection")).to_have_text("Live")
    page.evaluate("window.__liveopsTestMarker = 'still here'")
    return page


def test_a_new_operation_appears_and_finishes_live_for_its_owner_only(
    site: Server, open_page: Any
) -> None:
    alices_list = open_list(open_page, site, "alice")
    bobs_list = open_list(open_page, site, "bob")

    starter = open_page("alice")
    starter.goto(f"{site.url}/")
    live = start(starter, "Long import", "Start a long import", **{DURATION: "2"})
    token = f"demo.longimport:{live.pk}"

    first_row = alices_list.locator("[data-liveop-list] > tr[data-liveop-row]").first
    expect(first_row).to_have_id(f"liveop-row-{live.pk}")
    expect(first_row.locator(".liveops-row-state")).to_have_text("Finished", timeout=20_000)
    expect(first_row.locator(".liveops-row-duration")).to_have_text(re.compile(r"^\d+\.\d s$"))
    expect(first_row.locator(".liveops-row-owner")).to_have_text("alice")
    expect(first_row.get_by_role("link")).to_have_attribute("href", f"{LIST_PATH}{live.pk}/")
    states = [
        seen["state"] for seen in alices_list.evaluate("window.__rowsSeen") if seen["op"] == token
    ]
    assert "In progress" in states, states
    assert states[-1] == "Finished"
    assert alices_list.evaluate("window.__liveopsTestMarker") == "still here", "it reloaded"
    assert_accessible(alices_list, "the list after a live insert")

    # Bob's list was live all along and never showed alice's operation.
    assert bobs_list.locator(f"#liveop-row-{live.pk}").count() == 0
    assert [seen for seen in bobs_list.evaluate("window.__rowsSeen") if seen["op"] == token] == []
    bobs_list.reload()
    expect(bobs_list.locator(".liveops-list-connection")).to_have_text("Live")
    assert bobs_list.locator(f"#liveop-row-{live.pk}").count() == 0
