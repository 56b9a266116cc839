"""``LiveOpsLifespan``: end this process's running operations when the ASGI server stops.

Wrap your ASGI application with it::

    application = LiveOpsLifespan(ProtocolTypeRouter({...}))

On the ``lifespan`` shutdown that uvicorn and hypercorn send on SIGTERM or
Ctrl-C, operations that the ``thread`` runner is running in this process are
ended as interrupted and their viewers are told, before the process exits (such
servers end by re-raising the signal, so exit hooks would not run). Other
servers (daphne) exit normally and the same is done by an exit hook.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async

from liveops.liveness import heartbeat

__all__ = ["LiveOpsLifespan"]

Scope = dict[str, Any]


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
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await sync_to_async(heartbeat.interrupt_all, thread_sensitive=False)()
                await send({"type": "lifespan.shutdown.complete"})
                return
