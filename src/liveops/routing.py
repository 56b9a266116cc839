"""WebSocket routes: add ``websocket_urlpatterns`` to your ASGI ``URLRouter``.

Importing this module loads no model: an ``asgi.py`` may import it before
``get_asgi_application()`` has set Django up (as django-liveops 0.4's guide had it).
The consumer is imported when the first socket connects, or when something asks for
its class (the system checks do, once the apps are loaded).
"""

from __future__ import annotations

from typing import Any

from django.urls import path

from liveops._protocol import WEBSOCKET_PATH

__all__ = ["WEBSOCKET_PATH", "websocket_urlpatterns"]


class _LiveOperationSocket:
    """The ASGI application of ``LiveOperationConsumer``, made at its first use."""

    def __init__(self) -> None:
        self._application: Any = None

    @property
    def consumer_class(self) -> type:
        """Return ``LiveOperationConsumer``, as ``Consumer.as_asgi()`` applications do."""
        return self.application.consumer_class  # type: ignore[no-any-return]

    @property
    def application(self) -> Any:
        if self._application is None:
            from liveops.consumers import LiveOperationConsumer

            self._application = LiveOperationConsumer.as_asgi()
        return self._application

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.application(scope, receive, send)


websocket_urlpatterns = [
    # django-stubs types path() for views only; Channels' URLRouter takes ASGI apps.
    path(WEBSOCKET_PATH, _LiveOperationSocket(), name="liveops-websocket"),  # type: ignore[arg-type]
]
