"""The ASGI application of the end-to-end stack test's servers (uvicorn and daphne).

tests/asgi.py, with tests.settings_stack (a Redis channel layer) and static files served
by django.contrib.staticfiles, so Chromium gets /static/liveops/liveops.js from the same
server as the page.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_stack")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from liveops.asgi import LiveOpsLifespan  # noqa: E402
from liveops.routing import websocket_urlpatterns  # noqa: E402

application = LiveOpsLifespan(
    ProtocolTypeRouter(
        {
            "http": ASGIStaticFilesHandler(django_asgi_app),
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)
