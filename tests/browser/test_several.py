"""Several operations on one page: independent containers, one WebSocket."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import pytest
from playwright.sync_api import expect

from tests.browser.support import LivePage, Server

pytestmark = pytest.mark.browser


def test_three_operations_on_one_page_update_independently_over_one_socket(
    daphne_site: Server, open_page: Any
) -> None:
    page = open_page("alice")
    sockets: list[Any] = []
    # The batch page's sockets (the home page has one of its own, for its live list).
    page.on("websocket", lambda ws: "?op=" in ws.url and sockets.append(ws))
    page.goto(f"{daphne_site.url}/")
    section = page.get_by_role("region", name="Several at once")
    section.get_by_label("Duration of the longest (seconds)").fill("3")
    section.get_by_role("button", name="Start all three").click()
    page.wait_for_url(re.compile(r"/several/\d+/$"))

    containers = page.locator("[data-liveop]")
    expect(containers).to_have_count(3)
    ids = containers.evaluate_all("found => found.map((c) => c.id)")
    long_import, stream_import, failing_job = (
        LivePage(page, i.removeprefix("liveop-")) for i in ids
    )

    expect(long_import.region("result")).to_contain_text("Import finished", timeout=30_000)
    expect(long_import.region("progress")).to_contain_text("(226/226)")
    expect(stream_import.region("result")).to_contain_text("Import finished", timeout=30_000)
    expect(failing_job.region("result")).to_contain_text("The operation failed", timeout=30_000)
    expect(failing_job.region("status")).to_contain_text("Failed")
    for live in (long_import, stream_import):
        expect(live.region("status")).to_contain_text("Finished")

    # Each ended in its own time (1.2 s, 2.1 s, 3 s of work), none waiting for another.
    order = [live.seen()["finishedOrder"] for live in (failing_job, stream_import, long_import)]
    assert order == [1, 2, 3], order
    # The streamed import read a generator: it showed a count, not a percent.
    counts = stream_import.seen()["count"]
    assert any(re.fullmatch(r"\d+ rows? done", count) for count in counts), counts

    assert len(sockets) == 1, [ws.url for ws in sockets]
    for live in (long_import, stream_import, failing_job):
        assert live.pk in unquote(sockets[0].url)
    assert page.evaluate("window.liveops.sockets.size") <= 1
