"""A server that is stopped tells its own viewers: their pages say "Interrupted" first.

Each server we document (uvicorn, daphne, hypercorn) runs an endless operation with the
thread runner. Chromium and a WebSocket client watch it; a second Chromium page watches
an operation that never starts, so it still has something to reconnect for. SIGTERM to
the server must end the run as interrupted in the database and show that to its viewers
before their sockets close (the server is gone afterwards, so a page can only have it
from before), and the page left behind must count down to its next attempt.

    pytest -m postgres --ds=tests.settings_pg -p no:cacheprovider tests/test_server_shutdown.py
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from liveops.consumers import CloseCode
from liveops.lifecycle import INTERRUPTED_MESSAGE
from tests.e2e_support import SHOW_TIMEOUT, Server, SocketViewer, logs, session_cookie, stack_env
from tests.pg_workers import require_postgres, require_redis, wait_for
from tests.settings_stack import LAYER_URL
from tests.testapp.models import Endless, Scripted

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

SERVERS = ["uvicorn", "daphne", "hypercorn"]
#: How long a server may take, after SIGTERM, to close its sockets and to exit.
STOP_TIMEOUT = 10.0
#: Math.random() in the pages: every backoff delay lands just under its ceiling
#: (0.5 s, 1 s, 2 s…), so the third retry waits 2 s and counts down from "2 s".
RANDOM = 0.999
COUNTDOWN = ["Reconnecting in 2 s…", "Reconnecting in 1 s…", "Connecting…"]

# Loopback only: never through a proxy the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="session")
def services() -> None:
    require_postgres()
    require_redis()  # the channel layer of the servers


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    env = stack_env(LAYER_URL, f"lo-stop-{uuid.uuid4().hex[:8]}", LIVEOPS_TEST_RUNNER="thread")
    started = Server(request.param, env)
    try:
        started.wait_until_ready()
        yield started
    finally:
        started.process.stop()


def _enqueue_in(server: Server, op: Any) -> None:
    """Have the server process queue ``op`` for its own thread runner."""
    url = f"{server.url}/test/enqueue/{op.live_label()}/{op.pk}/"
    with _OPENER.open(urllib.request.Request(url, data=b"", method="POST"), timeout=5) as answer:
        assert answer.status == 200


def _status_when_closed(viewer: SocketViewer, timeout: float) -> tuple[int | None, str] | None:
    """Apply frames until the server closes the socket; return its close code and the status.

    None when the socket is still open after ``timeout`` seconds.
    """
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = viewer.socket.recv(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            break
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), viewer.text("status")
        assert isinstance(text, str), f"a binary frame: {text!r}"
        viewer.frames.append(text)
        viewer.page.apply_frame(text)
    return None


def _record_connection_texts(page: Any, pk: Any) -> None:
    """Keep every text the page's connection region shows, in order, in window.shown."""
    page.evaluate(
        """id => {
          const region = document.getElementById(id);
          window.shown = [region.textContent];
          new MutationObserver(() => {
            if (window.shown.at(-1) !== region.textContent) window.shown.push(region.textContent);
          }).observe(region, {childList: true, characterData: true, subtree: true});
        }""",
        f"liveop-{pk}-connection",
    )


def test_sigterm_shows_interrupted_on_the_server_s_pages_before_their_sockets_close(
    browser: Any, server: Server, user: Any
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    running = Endless.objects.create(owner=user)
    waiting = Scripted.objects.create(owner=user)  # never queued: its page reconnects
    _enqueue_in(server, running)
    wait_for(
        lambda: Endless.objects.filter(pk=running.pk, started_on__isnull=False).exists(),
        SHOW_TIMEOUT,
        f"a thread of {server.kind} runs the operation",
        watch=[server.process],
    )
    name, session = session_cookie(user)
    context, viewer = browser.new_context(), None
    try:
        context.add_cookies([{"name": name, "value": session, "url": server.url}])
        context.add_init_script(f"Math.random = () => {RANDOM};")
        running_page, waiting_page = context.new_page(), context.new_page()
        running_page.goto(server.url + running.get_absolute_url())
        status = running_page.locator(f"#liveop-{running.pk}-status")
        expect(status).to_contain_text("In progress", timeout=SHOW_TIMEOUT * 1000)
        waiting_page.goto(server.url + waiting.get_absolute_url())
        connection = waiting_page.locator(f"#liveop-{waiting.pk}-connection")
        expect(connection).to_have_text("Live", timeout=SHOW_TIMEOUT * 1000)
        _record_connection_texts(waiting_page, waiting.pk)
        viewer = SocketViewer(server.url, running.get_absolute_url(), f"{name}={session}")
        # Its page model starts from the page's HTML: wait for the socket's own snapshot, or
        # the stop could come before this socket is one the server knows.
        viewer.wait_until(
            lambda: bool(viewer.frames) and "In progress" in viewer.text("status"),
            "the snapshot arrives",
            SHOW_TIMEOUT,
        )

        os.kill(server.process.pid, signal.SIGTERM)
        closed = _status_when_closed(viewer, STOP_TIMEOUT)
        assert closed is not None, (
            f"{server.kind} kept the socket open {STOP_TIMEOUT} s after SIGTERM; "
            f"it shows {viewer.text('status')!r}" + logs([server.process])
        )
        code, shown = closed
        assert "Interrupted" in shown, (
            f"{server.kind} closed the socket ({code}) while it showed {shown!r}"
            + logs([server.process])
        )
        assert code == CloseCode.TRY_AGAIN, f"closed with {code}" + logs([server.process])
        wait_for(
            lambda: server.process.returncode is not None,
            STOP_TIMEOUT,
            f"{server.kind} exits after SIGTERM",
        )
        running.refresh_from_db()
        assert (running.interrupted, running.error_message) == (True, INTERRUPTED_MESSAGE)

        # The server is gone: what the page shows now, it had before its socket closed.
        expect(status).to_contain_text("Interrupted", timeout=1000)
        try:
            waiting_page.wait_for_function(
                """countdown => window.shown.some((_, i) =>
                     countdown.every((text, j) => window.shown[i + j] === text))""",
                arg=COUNTDOWN,
                timeout=SHOW_TIMEOUT * 1000,
            )
        except PlaywrightTimeout:
            shown_texts = waiting_page.evaluate("window.shown")
            raise AssertionError(f"no countdown {COUNTDOWN}; the page said {shown_texts}") from None
    finally:
        if viewer is not None:
            viewer.close()
        context.close()
