"""The live page in real Chromium, against the demo under a real ASGI server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.pages import start, wait_until
from tests.browser.support import ARTIFACTS, PASSWORD, LivePage, Server

pytestmark = pytest.mark.browser

DURATION = "Duration (seconds)"


def test_long_import_updates_in_place_over_the_websocket_alone(
    site: Server, open_page: Any
) -> None:
    page = open_page()
    page.goto(f"{site.url}/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{site.url}/")

    sockets: list[Any] = []
    loaded: list[bool] = []
    after_load: list[Any] = []
    # The live page's sockets (the home page has one of its own, for its live list).
    page.on("websocket", lambda ws: "?op=" in ws.url and sockets.append(ws))
    page.on("load", lambda _: loaded.append(True))  # the home page has loaded already
    page.on("request", lambda request: loaded and after_load.append(request))

    live = start(page, "Long import", "Start a long import", **{DURATION: "4"})
    page.wait_for_load_state("load")
    url = page.url
    page.evaluate("window.__liveopsTestMarker = 'still here'")

    expect(live.region("result")).to_contain_text("Import finished", timeout=30_000)
    expect(live.region("result")).to_contain_text("226")  # imported rows
    expect(live.region("status")).to_contain_text("Finished")

    seen = live.seen()
    assert len(seen["percent"]) >= 3, f"the percent should have moved live: {seen}"
    assert len(seen["status"]) >= 2, f"the status line should have changed live: {seen}"
    assert seen["logLines"] >= 10, f"log lines should have arrived live: {seen}"
    # Keyed appends: every line once, in order, whatever arrived twice or late.
    assert live.log_seqs() == list(range(1, 42))

    assert page.url == url
    assert page.evaluate("window.__liveopsTestMarker") == "still here", "the page reloaded"
    assert loaded, "the live page never fired its load event"
    assert [r.url for r in after_load if not r.url.startswith(("ws:", "wss:"))] == []
    assert len(sockets) == 1
    assert f"/ws/liveops/?op=demo.longimport%3A{live.pk}" in sockets[0].url
    # The page's view grant rides along, so the socket was let in without a session lookup.
    container = page.locator(f"[data-liveop='demo.longimport:{live.pk}']")
    grant = container.get_attribute("data-liveop-grant")
    assert grant
    assert f"%3A{live.pk}~{grant}" in sockets[0].url


def test_quick_count_shows_its_result_though_it_ended_before_the_socket_opened(
    daphne_site: Server, open_page: Any
) -> None:
    page = open_page("alice")
    frames: list[str] = []
    # The live page's frames (the home page's list has a socket of its own).
    page.on(
        "websocket",
        lambda ws: "?op=" in ws.url and ws.on("framereceived", lambda f: frames.append(f)),
    )
    page.goto(f"{daphne_site.url}/")

    live = start(page, "Quick count", "Start a quick count")

    expect(live.region("result")).to_contain_text("There are 5133 primes below 50000")
    expect(live.region("status")).to_contain_text("Finished")
    # The first frame is the snapshot the server reads from the database on connect:
    # the result was committed before anything was pushed, so it is already there.
    wait_until(page, lambda: bool(frames), "the snapshot frame")
    snapshot = json.loads(frames[0])["liveop_html"]
    assert f'id="liveop-{live.pk}-result"' in snapshot
    assert "data-liveop-terminal" in snapshot
    assert "5133" in snapshot
    expect(live.region("status")).not_to_contain_text("In progress")


def test_failing_job_shows_a_generic_error_and_the_traceback_to_staff_only(
    site: Server, open_page: Any
) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Failing job", "Start a failing job")

    expect(live.region("status")).to_contain_text("Failed", timeout=15_000)
    expect(live.region("result").get_by_role("alert")).to_contain_text("The operation failed")
    expect(live.region("log")).to_contain_text("Sent batch 4 of 8")
    assert len(live.seen()["percent"]) >= 2, "the percent should have moved before the failure"
    html = page.content()
    assert "Traceback" not in html
    assert "answered 503" not in html

    # Staff opening the same page see the traceback...
    staff = open_page("stella")
    staff.goto(page.url)
    staff_result = LivePage.of(staff).region("result")
    staff_result.get_by_text("Traceback (visible to staff)").click()
    expect(staff_result.locator("pre")).to_contain_text(
        "ConnectionError: the billing service answered 503"
    )

    # ...and get it live when they watch a job fail.
    staff.goto(f"{site.url}/")
    watched = start(staff, "Failing job", "Start a failing job")
    expect(watched.region("status")).to_contain_text("In progress")
    expect(watched.region("status")).to_contain_text("Failed", timeout=15_000)
    expect(watched.region("result").locator("pre")).to_contain_text("ConnectionError")


def test_replayed_and_late_fragments_leave_the_page_as_it_was(
    site: Server, demo: Any, open_page: Any
) -> None:
    page = open_page("alice")
    frames: list[str] = []
    page.on(
        "websocket",
        lambda ws: "?op=" in ws.url and ws.on("framereceived", lambda f: frames.append(f)),
    )
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "3"})
    expect(live.region("result")).to_contain_text("Import finished", timeout=30_000)
    result_id = f'id="liveop-{live.pk}-result"'

    def html_frames_so_far() -> list[str]:
        return [f for f in frames if "liveop_html" in json.loads(f)]

    def terminal_received() -> bool:
        htmls = (json.loads(f)["liveop_html"] for f in html_frames_so_far())
        return any(result_id in html and "data-liveop-terminal" in html for html in htmls)

    wait_until(page, terminal_received, "the terminal frame")
    html_frames = html_frames_so_far()
    assert len(html_frames) >= 10, f"expected a stream of live frames, got {len(html_frames)}"
    final = live.regions_html()

    def apply(target: Any, frame: str) -> None:
        target.evaluate("frame => window.liveops.applyFrame(frame)", frame)

    # On the finished page: every frame again, twice; the newest twice; the oldest last.
    for frame in html_frames:
        apply(page, frame)
        apply(page, frame)
    apply(page, html_frames[-1])
    apply(page, html_frames[-1])
    apply(page, html_frames[0])
    assert live.regions_html() == final

    # Mid-run: the same frames, re-addressed to an operation that never runs, so
    # nothing but this test changes its page.
    idle = demo.create("demo.longimport", "alice", seconds=3)
    other = open_page("alice")
    other.goto(f"{site.url}{idle.url}")
    idle_live = LivePage(other, idle.pk)
    idle_live.wait_for_connection("state === 'open'")
    moved = [frame.replace(live.pk, idle.pk) for frame in html_frames]
    middle_index = len(moved) // 2
    for frame in moved[: middle_index + 1]:
        apply(other, frame)
    middle = idle_live.regions_html()
    assert "data-liveop-terminal" not in middle["status"], "expected a mid-run state"
    assert 'data-liveop-state="STARTED"' in middle["status"]

    apply(other, moved[middle_index])  # delivered twice
    apply(other, moved[middle_index])
    for frame in reversed(moved[:middle_index]):  # older ones, after the newer
        apply(other, frame)
    assert idle_live.regions_html() == middle

    for frame in moved[middle_index + 1 :]:
        apply(other, frame)
    assert idle_live.regions_html() == {
        name: html.replace(live.pk, idle.pk) for name, html in final.items()
    }


def test_a_second_tab_opened_mid_import_shows_the_whole_log_at_once(
    site: Server, open_page: Any
) -> None:
    """The demo's long import stores its live progress (``persist_progress = True``).

    A second tab opened mid-run holds every log line the first tab holds in the page the
    server rendered and in its socket's first frame, the snapshot read from the
    database: a live update sends only the lines written since the one before it.
    """
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "12"})
    live.wait_for_log_seq_above(4)
    held = live.log_seqs()

    second = open_page("alice")
    frames: list[str] = []
    second.on(
        "websocket",
        lambda ws: "?op=" in ws.url and ws.on("framereceived", lambda f: frames.append(f)),
    )
    response = second.goto(page.url)
    assert response is not None
    served = {int(seq) for seq in re.findall(r'data-liveop-seq="(\d+)"', response.text())}
    assert set(held) <= served, f"the page as served lacks log lines: {held} vs {served}"
    expect(second.get_by_role("link", name="Open this page in a second tab")).to_be_visible()
    wait_until(second, lambda: bool(frames), "the second tab's snapshot")
    snapshot = json.loads(frames[0])["liveop_html"]
    in_snapshot = {int(seq) for seq in re.findall(r'data-liveop-seq="(\d+)"', snapshot)}
    assert set(held) <= in_snapshot, f"the snapshot lacks log lines: {held} vs {in_snapshot}"
    assert 'data-liveop-state="STARTED"' in snapshot
    assert re.search(r'<progress[^>]* value="[1-9]', snapshot), "no stored percent"
    second_live = LivePage(second, live.pk)
    expect(second_live.region("result")).to_contain_text("Import finished", timeout=30_000)
    assert second_live.log_seqs() == live.log_seqs()


def test_a_finished_operation_looks_the_same_live_and_after_a_reload(
    site: Server, open_page: Any
) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "2"})
    expect(live.region("result")).to_contain_text("Import finished", timeout=30_000)
    seen_live = live.regions_html()
    page.reload()
    assert LivePage.of(page).regions_html() == seen_live


def test_screenshots_of_the_home_page_and_a_long_import(site: Server, open_page: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {
        name: ARTIFACTS / f"{name}.png"
        for name in ("long-import-running", "long-import-finished", "home")
    }
    for path in shots.values():
        path.unlink(missing_ok=True)
    page = open_page("bob")
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "4"})

    expect(live.region("stages").locator('[aria-current="step"]')).to_have_count(1)
    page.screenshot(path=str(shots["long-import-running"]), full_page=True)
    expect(live.region("result")).to_contain_text("Import finished", timeout=30_000)
    expect(live.region("stages")).to_contain_text("3 of 3 stages done")
    expect(live.region("stages").get_by_role("progressbar", name="Stages done")).to_have_attribute(
        "value", "3"
    )
    page.screenshot(path=str(shots["long-import-finished"]), full_page=True)
    page.goto(f"{site.url}/")
    expect(page.get_by_role("table")).to_contain_text("Long import")
    page.screenshot(path=str(shots["home"]), full_page=True)

    for path in shots.values():
        assert path.stat().st_size > 10_000, f"{path} looks empty"
