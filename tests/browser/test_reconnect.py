"""A server restart mid-run: the page reconnects on its own and catches up.

The operation runs in a worker process of its own (so it outlives the server) and
publishes through Redis, as it would with Celery or a task worker in production.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import Demo, LivePage

pytestmark = pytest.mark.browser

NOT_EMPTY = re.compile(r"\S")


def _watch(demo: Demo, redis_url: str, open_page: Any, cleanup: Any, seconds: float) -> Any:
    """Start a Redis-backed server and a page watching a long import that has not started."""
    server = cleanup(demo.server("uvicorn", LIVEOPS_DEMO_REDIS=redis_url)).start()
    op = demo.create("demo.longimport", "alice", seconds=seconds)
    page = open_page("alice")
    page.goto(f"{server.url}{op.url}")
    live = LivePage(page, op.pk)
    live.wait_for_connection("state === 'open'")
    expect(live.region("status")).to_contain_text("Waiting to start")
    page.evaluate("window.__liveopsTestMarker = 'still here'")
    worker = cleanup(demo.worker(op, demo.environ(LIVEOPS_DEMO_REDIS=redis_url)))
    return server, op, page, live, worker


def _stop_server_and_see_the_page_notice(server: Any, live: LivePage) -> None:
    server.stop()
    live.wait_for_connection("state !== 'open'")
    expect(live.region("connection")).to_have_text(NOT_EMPTY)  # says so in words


def test_page_reconnects_after_a_server_restart_and_catches_up(
    demo: Demo, redis_url: str, cleanup: Any, open_page: Any
) -> None:
    server, op, page, live, worker = _watch(demo, redis_url, open_page, cleanup, seconds=12)
    live.wait_for_log_seq_above(2)  # live, from the worker, through Redis
    _stop_server_and_see_the_page_notice(server, live)
    last_seq = max(live.log_seqs())
    percent = live.region("progress").locator(".liveops-percent")
    percent_before = percent.text_content()
    assert worker.poll() is None, "the operation ended before the restart: make it longer"

    server.start()

    live.wait_for_connection("state === 'open'", timeout=20_000)
    live.wait_for_log_seq_above(last_seq, timeout=20_000)
    expect(percent).not_to_have_text(percent_before or "")
    expect(live.region("result")).to_contain_text("Import finished", timeout=30_000)
    expect(live.region("status")).to_contain_text("Finished")
    assert worker.wait(30) == 0
    assert page.url == f"{server.url}{op.url}"
    assert page.evaluate("window.__liveopsTestMarker") == "still here", "the page reloaded"


def test_page_shows_the_result_of_an_operation_that_ended_while_the_server_was_down(
    demo: Demo, redis_url: str, cleanup: Any, open_page: Any
) -> None:
    server, op, page, live, worker = _watch(demo, redis_url, open_page, cleanup, seconds=3)
    live.wait_for_log_seq_above(0)
    _stop_server_and_see_the_page_notice(server, live)
    assert worker.wait(30) == 0  # finished, and nobody was connected to see it

    server.start()

    expect(live.region("result")).to_contain_text("Import finished", timeout=20_000)
    expect(live.region("result")).to_contain_text("226")
    expect(live.region("status")).to_contain_text("Finished")
    assert page.url == f"{server.url}{op.url}"
    assert page.evaluate("window.__liveopsTestMarker") == "still here", "the page reloaded"


def test_a_worker_process_pushes_its_result_to_the_page_through_redis(
    demo: Demo, redis_url: str, cleanup: Any, open_page: Any
) -> None:
    # A worker exits as soon as run() returns: the final update must be out by then.
    _, _, _, live, worker = _watch(demo, redis_url, open_page, cleanup, seconds=1)
    assert worker.wait(30) == 0
    expect(live.region("result")).to_contain_text("Import finished", timeout=5_000)
    expect(live.region("status")).to_contain_text("Finished")
