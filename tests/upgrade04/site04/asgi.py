"""The ASGI application in the order django-liveops 0.4's guide gave it.

``liveops.routing`` is imported before ``get_asgi_application()`` has set Django up.
"""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

from liveops.routing import websocket_urlpatterns

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site04.settings")

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
