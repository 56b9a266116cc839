"""WebSocket viewers for the tests: a socket on ``tests.asgi.application``, as a page opens it,
and what the tests read from it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import lxml.html
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from liveops._execution import execute
from liveops._updates import Chunk, Rank, Update
from tests.asgi import application

T = TypeVar("T")

WS_PATH = "/ws/liveops/"
CONNECT_TIMEOUT = 10  # a ceiling: after a Redis restart a connect takes longer
#: How long a test waits for a frame it expects.
TIMEOUT = 5


async def open_viewer(
    *tokens: str,
    query: str | None = None,
    user: Any = None,
    cookie: bytes | None = None,
) -> WebsocketCommunicator:
    """Connect a socket for ``tokens`` (or a raw ``query``), as ``user`` or with a session cookie.

    The Origin header passes AllowedHostsOriginValidator; the socket is accepted
    (rejections close it later with a code).
    """
    qs = urlencode([("op", token) for token in tokens]) if query is None else query
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    if cookie is not None:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, f"{WS_PATH}?{qs}", headers=headers)
    if user is not None:
        communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert connected
    return communicator


def marker_message(group: str, html: str) -> dict[str, Any]:
    """Return a live update message for ``group`` that carries only ``html``.

    A socket watching the group receives it as the frame ``{"liveop_html": html}``.
    """
    return Update(group, {"marker": (Chunk(Rank(0, False, 0), html),)}).to_message()


def session_cookie(user: Any) -> bytes:
    """Return the ``Cookie`` header of a logged-in session of ``user``."""
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


async def next_frame(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """Return the next frame the socket receives, decoded."""
    data = json.loads(await communicator.receive_from(timeout=TIMEOUT))
    assert isinstance(data, dict)
    return data


def elements(html: str) -> dict[str, Any]:
    """Map id -> element of the top-level region elements of a fragment."""
    parsed = lxml.html.fragments_fromstring(html)
    assert all(not isinstance(el, str) for el in parsed), "text outside any region element"
    found = {el.get("id"): el for el in parsed}
    assert len(found) == len(parsed), "two top-level elements share an id"
    return found


async def assert_closed_with(communicator: WebsocketCommunicator, code: int) -> None:
    """Check that the server closes the socket with ``code``."""
    message = await communicator.receive_output(timeout=TIMEOUT)
    assert message == {"type": "websocket.close", "code": code}


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a worker thread with its own database connection, closed afterwards."""

    def call() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()  # this thread's connections only

    return await sync_to_async(call, thread_sensitive=False)()


async def run_op(op: Any) -> None:
    """Execute ``op`` in a thread of its own, as the thread runner would."""
    await in_thread(execute, op.live_label(), op.pk)
