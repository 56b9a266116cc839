"""The demo's ASGI application: Django for HTTP, the liveops consumer for WebSockets.

Serve it with any ASGI server::

    uvicorn demo_site.asgi:application
    daphne demo_site.asgi:application
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
# Set Django up first: the imports below load models and settings.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.sessions import SessionMiddlewareStack  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

import liveops.routing  # noqa: E402
from liveops.asgi import LiveOpsLifespan  # noqa: E402

# LiveOpsLifespan: when the server stops (SIGTERM, Ctrl-C), operations still running
# in this process's thread runner are shown as interrupted instead of "running".
application = LiveOpsLifespan(
    ProtocolTypeRouter(
        {
            # Plain HTTP goes to Django's views. ASGIStaticFilesHandler serves /static/ the
            # way runserver does, since uvicorn and daphne do not; in production, serve
            # static files with WhiteNoise or your web server and use django_asgi_app alone.
            "http": ASGIStaticFilesHandler(django_asgi_app),
            # WebSockets, from the inside out: route /ws/liveops/ to the liveops consumer;
            # give it the session (it looks the user up only when the page's view grant
            # is missing or old; AuthMiddlewareStack works too, at two queries a connect);
            # refuse connections opened by pages of other sites (Origin vs ALLOWED_HOSTS).
            "websocket": AllowedHostsOriginValidator(
                SessionMiddlewareStack(URLRouter(liveops.routing.websocket_urlpatterns))
            ),
        }
    )
)
