"""Chaining, a custom region and the time left, as a person sees them in real Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.pages import start
from tests.browser.support import Server

pytestmark = pytest.mark.browser

SEND_PAGE = re.compile(r"/operations/demo\.sendreport/[0-9a-f-]{36}/$")


def test_a_report_draws_its_chart_then_the_page_switches_to_the_sending_in_place(
    site: Server, open_page: Any
) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    report = start(
        page,
        "Sales report",
        "Start a sales report",
        **{"Duration (seconds)": "5", "Recipients": "20"},
    )
    page.evaluate("window.__liveopsTestMarker = 'still here'")
    report_url = page.url

    # The custom region, redrawn live by p.swap() from its template.
    chart = report.region("chart")
    expect(chart.get_by_text("Sales by region")).to_be_visible(timeout=15_000)
    expect(chart.locator("meter")).not_to_have_count(0)

    # p.chain_to(): the page becomes the sending's page, without a reload.
    page.wait_for_url(SEND_PAGE, timeout=20_000)
    assert page.url != report_url
    expect(page.get_by_role("heading", level=1)).to_have_text("Sending the sales report")
    expect(page).to_have_title(re.compile("Sending the sales report"))
    sending = page.locator("[data-liveop^='demo.sendreport:']")
    expect(sending).to_have_count(1)
    expect(page.locator("[data-liveop^='demo.salesreport:']")).to_have_count(0)
    expect(sending.locator(".liveops-eta")).to_contain_text("left", timeout=15_000)
    expect(sending.locator(".liveops-status")).to_contain_text("Finished", timeout=20_000)
    expect(sending.locator(".liveops-result")).to_contain_text("20")
    assert page.evaluate("window.__liveopsTestMarker") == "still here", "the page reloaded"
    socket_urls = page.evaluate(
        "Array.from(window.liveops.sockets.values(), (ws) => decodeURIComponent(ws.url))"
    )
    assert all("demo.salesreport" not in url for url in socket_urls), socket_urls

    # The report's own page, opened now, shows how it ended and links to the sending.
    later = open_page("alice")
    later.goto(report_url)
    link = later.locator("a[data-liveop-chain]")
    expect(link).to_have_text("Sending the sales report")
    expect(link).to_have_attribute("href", re.compile(SEND_PAGE.pattern))
    expect(later.locator(".liveops-extra")).to_contain_text("Sales by region")
    # Its snapshot comes with the socket: once that is open, the page has seen the end.
    expect(later.locator("[data-liveop]")).to_have_attribute(
        "data-liveop-connection", re.compile("open|closed")
    )
    assert later.url == report_url, "a page opened on a finished chain stays where it is"
