"""``LiveOpsLifespan``: end this process's running operations when the ASGI server stops.

Wrap your ASGI application with it::

    application = LiveOpsLifespan(ProtocolTypeRouter({...}))

On the ``lifespan`` shutdown that uvicorn and hypercorn send on SIGTERM or
Ctrl-C, operations that the ``thread`` runner is running in this process are
ended as interrupted and their viewers are told, before the process exits (such
servers end by re-raising the signal, so exit hooks would not run). Other
servers (daphne) exit normally and the same is done by an exit hook.

On the ``lifespan`` startup under uvicorn, it logs an error when uvicorn has no
WebSocket library (no system check runs under uvicorn to say so).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from asgiref.sync import sync_to_async

from liveops._liveness import heartbeat

__all__ = ["LiveOpsLifespan"]

logger = logging.getLogger("liveops")

Scope = dict[str, Any]

#: What the lifespan startup logs under a uvicorn that cannot speak WebSocket.
UVICORN_WITHOUT_WEBSOCKETS = (
    "uvicorn has no WebSocket library, so live pages cannot connect: "
    "pip install 'uvicorn[standard]' (or django-liveops[server])"
)


def websocket_library() -> str | None:
    """Return the WebSocket library uvicorn would pick ("websockets", "wsproto"), or None."""
    # The order of uvicorn's own choice (uvicorn.protocols.websockets.auto).
    for name in ("websockets", "wsproto"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return name
    return None


class LiveOpsLifespan:
    """ASGI middleware: answer ``lifespan`` events, pass everything else through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Handle a lifespan scope, or hand the scope to the wrapped application."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if "uvicorn" in sys.modules and websocket_library() is None:
                    logger.error(UVICORN_WITHOUT_WEBSOCKETS)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await sync_to_async(heartbeat.interrupt_all, thread_sensitive=False)()
                await send({"type": "lifespan.shutdown.complete"})
                return
