"""WebSocket routes: add ``websocket_urlpatterns`` to your ASGI ``URLRouter``."""

from __future__ import annotations

from django.urls import path

from liveops._protocol import WEBSOCKET_PATH
from liveops.consumers import LiveOperationConsumer

__all__ = ["WEBSOCKET_PATH", "websocket_urlpatterns"]

websocket_urlpatterns = [
    # django-stubs types path() for views only; Channels' URLRouter takes ASGI apps.
    path(WEBSOCKET_PATH, LiveOperationConsumer.as_asgi(), name="liveops-websocket"),  # type: ignore[arg-type]
]
