"""System checks of what serves the live pages: the ASGI application, runserver, uvicorn.

Live pages connect a WebSocket to ``/ws/liveops/``. These checks report the set-ups in
which that socket can never connect, each with its fix:

- ``ASGI_APPLICATION`` unset (``liveops.E018``) or not importable (``liveops.E019``);
- an ASGI application that sends no WebSocket to ``LiveOperationConsumer``
  (``liveops.W006``), found by walking the application's routers and middleware; a
  part it does not know (a plain function, a custom class) ends the walk in silence;
- ``manage.py runserver`` being Django's own, which serves WSGI only (``liveops.W007``);
- uvicorn installed without a WebSocket library (``liveops.W008``).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning
from django.core.handlers.asgi import ASGIHandler
from django.core.management import get_commands
from django.utils.module_loading import import_string

_CONSUMER = "liveops.consumers.LiveOperationConsumer"
_GUIDE = "the README's guide 'Adding it to an existing project' shows the whole asgi.py"
_ROUTE_FIX = (
    '"websocket": AllowedHostsOriginValidator(SessionMiddlewareStack('
    "URLRouter(websocket_urlpatterns))), with websocket_urlpatterns from liveops.routing"
)
#: Apps whose ``runserver`` is Django's WSGI server (staticfiles only adds static files).
_WSGI_RUNSERVERS = frozenset({"django.core", "django.contrib.staticfiles"})
#: Attributes under which ASGI middleware commonly keep the application they wrap.
_WRAPPED = ("app", "application", "inner")
_MAX_DEPTH = 50


def check_asgi_application(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report an ASGI_APPLICATION that is missing, does not import, or routes no live socket."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return [
            Error(
                "ASGI_APPLICATION is not set, so no server knows the ASGI application that "
                "routes live pages' WebSockets to liveops.",
                hint='Set ASGI_APPLICATION = "yourproject.asgi.application" in your settings; '
                f"{_GUIDE}.",
                id="liveops.E018",
            )
        ]
    try:
        application = import_string(path)
    except Exception as exc:  # importing runs the project's asgi.py: anything can fail
        return [
            Error(
                f"ASGI_APPLICATION is {path!r}, which cannot be imported: "
                f"{type(exc).__name__}: {exc}",
                hint="Fix the dotted path (module.attribute) or the error in that module; "
                f"{_GUIDE}.",
                id="liveops.E019",
            )
        ]
    if reaches_consumer(application) is False:
        return [
            CheckWarning(
                f"ASGI_APPLICATION {path!r} sends no WebSocket to {_CONSUMER}, so live pages "
                "cannot connect.",
                hint=f"Route them in its ProtocolTypeRouter: {_ROUTE_FIX}; {_GUIDE}.",
                id="liveops.W006",
            )
        ]
    return []


def reaches_consumer(app: object, depth: int = 0) -> bool | None:
    """Return whether WebSockets can reach ``LiveOperationConsumer`` through ``app``.

    None when that cannot be told: the walk met an application it does not know.
    """
    if depth > _MAX_DEPTH:
        return None
    consumer_class = getattr(app, "consumer_class", None)  # set by Consumer.as_asgi()
    if isinstance(consumer_class, type):
        return any(f"{c.__module__}.{c.__qualname__}" == _CONSUMER for c in consumer_class.__mro__)
    if isinstance(app, ProtocolTypeRouter):
        mapping = app.application_mapping
        if "websocket" not in mapping:
            return False
        return reaches_consumer(mapping["websocket"], depth + 1)
    if isinstance(app, URLRouter):
        found = [reaches_consumer(getattr(r, "callback", r), depth + 1) for r in app.routes]
        if True in found:
            return True
        return None if None in found else False
    if isinstance(app, ASGIStaticFilesHandler):
        return reaches_consumer(app.application, depth + 1)
    if isinstance(app, ASGIHandler):
        return False  # Django's own handler refuses every scope but HTTP
    for name in _WRAPPED:
        inner = getattr(app, name, None)
        if inner is not None and callable(inner):
            return reaches_consumer(inner, depth + 1)
    return None


def check_runserver(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn, when ``manage.py runserver`` starts, that Django's own serves no WebSocket."""
    if sys.argv[1:2] != ["runserver"] or get_commands().get("runserver") not in _WSGI_RUNSERVERS:
        return []
    return [
        CheckWarning(
            "This runserver is Django's own, which serves WSGI only: live pages cannot "
            "connect (their WebSocket at /ws/liveops/ answers 404).",
            hint='pip install daphne and put "daphne" first in INSTALLED_APPS (its runserver '
            "serves ASGI_APPLICATION), or serve with uvicorn yourproject.asgi:application.",
            id="liveops.W007",
        )
    ]


def check_uvicorn_websockets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when uvicorn is installed but neither of its WebSocket libraries is."""
    from liveops.asgi import websocket_library

    if not _installed("uvicorn") or websocket_library() is not None:
        return []
    return [
        CheckWarning(
            "uvicorn is installed, but neither websockets nor wsproto is: served by uvicorn, "
            "live pages cannot connect.",
            hint="pip install 'uvicorn[standard]' (or django-liveops[server]). If you serve "
            'with another server, silence this: SILENCED_SYSTEM_CHECKS = ["liveops.W008"].',
            id="liveops.W008",
        )
    ]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
