"""The site ``layers.py`` measures: settings, ASGI application and worker in one module.

Used three ways, all configured through the environment that ``layers.py`` sets
(``LIVEOPS_BENCH_DB``, ``LIVEOPS_BENCH_REDIS``, ``LIVEOPS_BENCH_LAYER``,
``LIVEOPS_BENCH_OWNER``):

- as ``DJANGO_SETTINGS_MODULE=layer_site``;
- as the ASGI application of each server process
  (``uvicorn layer_site:application``): ``LiveOperationConsumer`` on
  ``/ws/liveops/``, behind a middleware that makes every socket the operation's
  owner (no session lookup: the measurement is about the channel layer);
- as a script: ``python layer_site.py setup`` creates the database, the owner and
  one operation and prints them as JSON; ``python layer_site.py worker PK SECONDS``
  runs that operation here, reporting progress for SECONDS, and prints what it sent.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

# --- settings ----------------------------------------------------------------------------

SECRET_KEY = "liveops-benchmark-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "liveops",
    "tests.testapp",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("LIVEOPS_BENCH_DB", "/tmp/liveops-bench.sqlite3"),
        # 150 snapshots read while the worker writes: WAL lets them do both.
        "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en"

LAYER_BACKENDS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
_REDIS = os.environ.get("LIVEOPS_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": LAYER_BACKENDS[os.environ.get("LIVEOPS_BENCH_LAYER", "core")],
        "CONFIG": {"hosts": [{"address": _REDIS, "socket_timeout": None, "max_connections": 1000}]},
    }
}
LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 10}

# --- ASGI application --------------------------------------------------------------------

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_app: ASGIApp | None = None


def _build() -> ASGIApp:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "layer_site")
    import django

    django.setup()
    from channels.routing import URLRouter
    from django.contrib.auth import get_user_model

    from liveops.routing import websocket_urlpatterns

    router = URLRouter(websocket_urlpatterns)
    # An unsaved instance with the owner's pk: can_view() compares pks, no query needed.
    owner = get_user_model()(pk=int(os.environ["LIVEOPS_BENCH_OWNER"]), username="bench")

    async def as_owner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await router(dict(scope, user=owner), receive, send)

    return as_owner


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serve WebSockets for the operation's owner; Django is set up on the first call."""
    global _app
    if scope["type"] != "websocket":
        raise RuntimeError(f"this benchmark site serves WebSockets only, not {scope['type']!r}")
    if _app is None:
        _app = _build()
    await _app(scope, receive, send)


# --- the setup and worker commands -------------------------------------------------------


def _setup() -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from tests.testapp.models import Scripted

    call_command("migrate", run_syncdb=True, verbosity=0)
    owner = get_user_model()._default_manager.create_user(f"bench-{uuid.uuid4().hex[:8]}")
    op = Scripted._default_manager.create(owner=owner)
    print(json.dumps({"owner": owner.pk, "pk": str(op.pk), "token": op.live_token}))


def _worker(pk: str, seconds: float) -> None:
    import _stamp
    from tests.testapp.models import Scripted

    from liveops._execution import execute

    sent = _stamp.install()

    def report_for_a_while(p: Any) -> None:
        # Far more calls than THROTTLE_HZ: the publisher coalesces them to 10 a second.
        begun = time.monotonic()
        n = 0
        with p.stage("Work"):
            while (elapsed := time.monotonic() - begun) < seconds:
                n += 1
                p.percent(100 * elapsed / seconds)
                p.status(f"Row {n}")
                if n % 10 == 0:
                    p.log(f"row {n} imported")
                time.sleep(0.005)  # the operation's own work
        p.result(rows=n)

    Scripted.SCRIPTS[uuid.UUID(pk)] = [report_for_a_while]
    execute(Scripted.live_label(), pk)
    row = Scripted._default_manager.get(pk=pk)
    print(
        json.dumps(
            {
                "sent": len(sent),
                "bytes": sum(sent),
                "version": row.version,
                "ok": row.finished_successfully,
            }
        )
    )


def main(argv: list[str]) -> None:
    """Run ``setup`` or ``worker PK SECONDS`` (see the module docstring)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "layer_site")
    import django

    django.setup()
    if argv[:1] == ["setup"]:
        _setup()
    elif argv[:1] == ["worker"] and len(argv) == 3:
        _worker(argv[1], float(argv[2]))
    else:
        raise SystemExit("usage: layer_site.py setup | worker PK SECONDS")


if __name__ == "__main__":
    main(sys.argv[1:])
