"""Set-ups in which live pages cannot work say so, in the page and its console.

Real servers serve the demo (DEBUG on, as ``make demo``): Django's own WSGI runserver,
uvicorn without WebSocket support (``--ws none``), and the usual uvicorn; real Chromium
watches. Each would otherwise end in "Reconnecting in N s…" forever, or a page that
never updates, with nothing said.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.pages import wait_until
from tests.browser.support import Demo, LivePage, Server, free_port
from tests.chromium import liveops_console_errors

pytestmark = pytest.mark.browser

NOWS = (
    "This server does not accept WebSockets: serve the site with an ASGI server (uvicorn or "
    "daphne); see “Reconnecting… forever” in django-liveops' troubleshooting guide."
)
WAITING = re.compile(r"^(Reconnecting in \d+ s…|Connection lost\. Retrying…)$")
#: Three handshakes that never open, with full-jitter waits of at most 0.5 s and 1 s
#: between them, then one HEAD of the page: under 2 s on loopback. The rest is margin
#: for a busy machine.
NOWS_WITHIN_MS = 10_000
#: Once the notice is up, the page retries at the capped backoff (at most 15 s, with
#: full jitter), and says something new only at its next attempt.
NEXT_ATTEMPT_WITHIN_MS = 15_000 + 10_000


class CommandServer(Server):
    """A Server started from a command of its own (Server knows uvicorn and daphne only)."""

    def __init__(self, kind: str, command: list[str], demo: Demo, port: int) -> None:
        super().__init__("uvicorn", port, demo.env, demo.directory / f"{kind}-{port}.log")
        self.kind = kind
        self._args = command

    def _command(self) -> list[str]:
        return self._args


def runserver(demo: Demo, port: int | None = None) -> CommandServer:
    """Django's own ``manage.py runserver``: WSGI, so every handshake gets a 404."""
    port = port or free_port()
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    return CommandServer("runserver", command, demo, port)


def uvicorn_without_websockets(demo: Demo, port: int | None = None) -> CommandServer:
    """uvicorn as if installed without websockets or wsproto: it takes no upgrade."""
    port = port or free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "demo_site.asgi:application"),
        *("--host", "127.0.0.1", "--port", str(port), "--ws", "none"),
        *("--lifespan", "off", "--timeout-graceful-shutdown", "2"),
    ]
    return CommandServer("uvicorn-ws-none", command, demo, port)


@pytest.fixture(scope="module")
def wsgi_site(demo: Demo) -> Iterator[Server]:
    server = runserver(demo).start()
    yield server
    server.stop()


def watch(demo: Demo, server: Server, open_page: Any) -> tuple[Any, LivePage, list[str]]:
    """Open the live page of an operation nothing runs, on ``server``, as alice."""
    op = demo.create("demo.longimport", "alice", seconds=30)
    page = open_page("alice")
    errors = liveops_console_errors(page)
    page.goto(f"{server.url}{op.url}")
    return page, LivePage(page, op.pk), errors


def test_runserver_says_it_takes_no_websockets(
    demo: Demo, wsgi_site: Server, open_page: Any
) -> None:
    page, live, errors = watch(demo, wsgi_site, open_page)

    started = time.monotonic()
    expect(live.region("connection")).to_have_text(NOWS, timeout=NOWS_WITHIN_MS)
    print(f"runserver: the notice after {time.monotonic() - started:.1f} s")
    assert live.connection() == "closed"
    assert len(errors) == 1
    assert f"ws://127.0.0.1:{wsgi_site.port}/ws/liveops/ never opened" in errors[0]
    assert "ASGI server" in errors[0]

    # DEBUG: the container says what served the page, in English, and keeps saying it.
    notice = live.container.locator("[data-liveop-dev-notice]")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("served over WSGI")
    expect(notice).to_contain_text("uvicorn yourproject.asgi:application")
    expect(notice).to_have_attribute("lang", "en")
    # The script ran (runserver serves static files in DEBUG): its own notice is gone.
    expect(page.locator("[data-liveop-script-missing]")).to_have_count(0)

    # The server's log says it too, once per process, however many pages it serves.
    page.reload()
    expect(live.region("connection")).to_have_text(NOWS, timeout=NOWS_WITHIN_MS)
    warning = "was served over WSGI"
    wait_until(page, lambda: warning in wsgi_site.tail(400), "the server's warning")
    assert wsgi_site.tail(400).count(warning) == 1


def test_a_list_on_runserver_says_it_too(wsgi_site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{wsgi_site.url}/")
    status = page.locator(".liveops-list-connection")
    expect(status).to_have_text(NOWS, timeout=NOWS_WITHIN_MS)
    notice = page.locator("[data-liveop-dev-notice]")
    expect(notice).to_have_count(1)  # before the list's table, once
    expect(notice).to_be_visible()
    expect(page.locator("[data-liveop-script-missing]")).to_have_count(0)


def test_uvicorn_without_websockets_then_down_then_fixed(
    demo: Demo, cleanup: Any, open_page: Any
) -> None:
    broken = cleanup(uvicorn_without_websockets(demo)).start()
    page, live, errors = watch(demo, broken, open_page)
    expect(live.region("connection")).to_have_text(NOWS, timeout=NOWS_WITHIN_MS)
    assert len(errors) == 1
    # Served over ASGI: no notice about WSGI, and the script's own notice is gone.
    expect(page.locator("[data-liveop-dev-notice]")).to_have_count(0)
    expect(page.locator("[data-liveop-script-missing]")).to_have_count(0)

    # A server that is down is no misconfiguration: back to the usual countdown.
    broken.stop()
    expect(live.region("connection")).to_have_text(WAITING, timeout=NEXT_ATTEMPT_WITHIN_MS)

    # Fixed and restarted on the same port: the page picks it up without a reload.
    page.evaluate("window.__liveopsTestMarker = 'still here'")
    cleanup(Server("uvicorn", broken.port, demo.env, demo.directory / "fixed.log")).start()
    live.wait_for_connection("state === 'open'", timeout=NEXT_ATTEMPT_WITHIN_MS)
    expect(live.region("connection")).to_have_text("Live")
    expect(live.region("status")).to_contain_text("Waiting to start")
    assert page.evaluate("window.__liveopsTestMarker") == "still here", "the page reloaded"


def test_a_page_whose_script_is_missing_says_so_after_two_seconds(
    demo: Demo, site: Server, open_page: Any
) -> None:
    op = demo.create("demo.longimport", "alice", seconds=30)
    page = open_page("alice")
    # Static files not served, or {% liveops_scripts %} missing: liveops.js never runs.
    page.route(re.compile(r"/liveops\.js(\?|$)"), lambda route: route.fulfill(status=404))
    page.goto(f"{site.url}{op.url}")
    live = LivePage(page, op.pk)
    notice = live.container.locator("[data-liveop-script-missing]")
    expect(notice).to_have_count(1)
    assert not notice.is_visible(), "shown at once: a slow script would flash it"
    expect(notice).to_be_visible(timeout=5_000)
    expect(notice).to_contain_text("{% load liveops %}{% liveops_scripts %}")
    expect(notice).to_contain_text("ASGIStaticFilesHandler")
    expect(live.region("connection")).to_have_text("")  # nobody to fill it in


def test_a_normal_page_has_no_notice(demo: Demo, site: Server, open_page: Any) -> None:
    op = demo.create("demo.longimport", "alice", seconds=30)
    page = open_page("alice")
    served = page.request.get(f"{site.url}{op.url}").text()
    assert "data-liveop-script-missing" in served  # DEBUG: the server put it there
    assert "data-liveop-dev-notice" not in served  # ASGI: nothing to say about WSGI
    page.goto(f"{site.url}{op.url}")
    live = LivePage(page, op.pk)
    live.wait_for_connection("state === 'open'")
    expect(page.locator("[data-liveop-script-missing]")).to_have_count(0)
    expect(page.locator(".liveops-dev-notice")).to_have_count(0)
