"""WebSocket viewers for the tests: a socket on ``tests.asgi.application``, as a page opens it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from channels.testing import WebsocketCommunicator

from liveops.updates import Chunk, Rank, Update
from tests.asgi import application

WS_PATH = "/ws/liveops/"
CONNECT_TIMEOUT = 10  # a ceiling: after a Redis restart a connect takes longer


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
