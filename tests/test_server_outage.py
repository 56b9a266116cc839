"""A channel-layer outage behind every ASGI server we document: no page is left on a dead socket.

Each server (uvicorn, daphne, hypercorn) serves the live page of an operation through a
Redis channel layer of this test's own. Chromium watches the page, and a WebSocket
client the same operation. Redis is killed: every socket must be closed by the server
with 4503 (daphne refuses to send 1011, the code this used before, and left the socket
open), the page must say the connection is lost, and once Redis is back the page must
show what happened meanwhile (the operation was cancelled) without a reload.

    pytest -m postgres --ds=tests.settings_pg -p no:cacheprovider tests/test_server_outage.py
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from liveops.consumers import CloseCode
from liveops.lifecycle import request_cancel
from tests.e2e_support import PrivateRedis, Server, SocketViewer, logs, session_cookie, stack_env
from tests.pg_workers import require_postgres
from tests.settings_stack import redis_channel_layers
from tests.testapp.models import Scripted

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

SERVERS = ["uvicorn", "daphne", "hypercorn"]
#: How long a server may take to close its sockets once Redis is gone.
CLOSE_TIMEOUT = 10.0
#: After Redis is back: the page's backoff (at most 8 s after four failures), then a connect.
RECOVER_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def services() -> None:
    require_postgres()


@pytest.fixture
def layer_prefix(settings: Any, private_redis: PrivateRedis) -> str:
    """Give this process the servers' layer, so what it announces goes the same way."""
    prefix = f"lo-outage-{uuid.uuid4().hex[:8]}"
    settings.CHANNEL_LAYERS = redis_channel_layers(private_redis.url, prefix)
    return prefix


@pytest.fixture(params=SERVERS)
def server(
    request: pytest.FixtureRequest, private_redis: PrivateRedis, layer_prefix: str
) -> Iterator[Server]:
    env = stack_env(private_redis.url, layer_prefix)
    started = Server(request.param, env)
    try:
        started.wait_until_ready()
        yield started
    finally:
        started.process.stop()


def _closed_with(viewer: SocketViewer, timeout: float) -> int | None:
    """Return the close code the server sent within ``timeout`` s; None if it sent none."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            viewer.socket.recv(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return None
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    return None


def test_a_layer_outage_closes_every_socket_and_the_page_shows_the_end_once_redis_is_back(
    browser: Any, server: Server, private_redis: PrivateRedis, user: Any
) -> None:
    from playwright.sync_api import expect

    op = Scripted.objects.create(owner=user)
    path = op.get_absolute_url()
    name, session = session_cookie(user)
    context = browser.new_context()
    try:
        context.add_cookies([{"name": name, "value": session, "url": server.url}])
        page = context.new_page()
        page.goto(server.url + path)
        connection = page.locator(f"#liveop-{op.pk}-connection")
        expect(connection).to_have_text("Live", timeout=10_000)
        viewer = SocketViewer(server.url, path, f"{name}={session}")
        viewer.wait_until(lambda: bool(viewer.frames), "the snapshot arrives", 10)

        private_redis.stop()
        code = _closed_with(viewer, CLOSE_TIMEOUT)
        assert code == CloseCode.TRY_AGAIN, (
            f"{server.kind} closed the socket with {code} after the layer failed, "
            f"not {CloseCode.TRY_AGAIN}" + logs([server.process])
        )
        expect(connection).to_have_text(
            re.compile(r"Connection lost|Reconnecting in"), timeout=CLOSE_TIMEOUT * 1000
        )

        assert request_cancel(op)  # stored; its announcement finds no Redis
        private_redis.start()
        try:
            expect(page.locator(f"#liveop-{op.pk}-status")).to_contain_text(
                "Cancelled", timeout=RECOVER_TIMEOUT * 1000
            )
        except AssertionError as exc:
            raise AssertionError(f"{server.kind}: {exc}{logs([server.process])}") from exc
        viewer.close()
    finally:
        context.close()
