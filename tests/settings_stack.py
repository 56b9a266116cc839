"""Settings of the processes of the end-to-end stack test (tests/test_e2e_stack.py).

tests.settings_pg (PostgreSQL, Celery on Redis, django-tasks-db) plus a Redis channel
layer, so that worker processes publish to viewers on other server processes:

    LIVEOPS_TEST_LAYER_URL     the layer's Redis (default redis://127.0.0.1:6379/15)
    LIVEOPS_TEST_LAYER_PREFIX  its key prefix (default "asgi"; the test uses one per run)
    LIVEOPS_TEST_PG_APPLICATION  the application_name of its database connections, so a
                               test counts each process's in pg_stat_activity (default: none)
    LIVEOPS_TEST_PROBE         a directory: answer SIGUSR2 with a census of live objects
                               written there (tests/soak_probe.py; default: none)

The test process itself runs with tests.settings_pg and applies the same layer with
``redis_channel_layers()``. The runner, heartbeat and stale timeout come from the
environment as in tests.settings; LIVEOPS_TEST_CELERY_QUEUE and LIVEOPS_TEST_TASKS_QUEUE
name the queues a server process would enqueue to.
"""

from __future__ import annotations

import os
from typing import Any

from tests.settings_pg import *  # noqa: F403
from tests.settings_pg import DATABASES, LIVEOPS


def redis_channel_layers(url: str, prefix: str) -> dict[str, Any]:
    """Return CHANNEL_LAYERS with one channels_redis layer, configured as docs/settings.md says."""
    # socket_timeout None: redis-py 8 would drop every idle WebSocket after ~5 s;
    # max_connections: its default pool of 100 fails a burst of connects.
    host = {"address": url, "socket_timeout": None, "max_connections": 1000}
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [host], "prefix": prefix},
        }
    }


LAYER_URL = os.environ.get("LIVEOPS_TEST_LAYER_URL", "redis://127.0.0.1:6379/15")
CHANNEL_LAYERS = redis_channel_layers(
    LAYER_URL, os.environ.get("LIVEOPS_TEST_LAYER_PREFIX", "asgi")
)

# Named, so that a test counts each process's connections (tests/test_soak.py).
if application_name := os.environ.get("LIVEOPS_TEST_PG_APPLICATION"):
    DATABASES = {
        "default": {**DATABASES["default"], "OPTIONS": {"application_name": application_name}}
    }

LIVEOPS = {
    **LIVEOPS,
    "CELERY_TASK_OPTIONS": {"queue": os.environ.get("LIVEOPS_TEST_CELERY_QUEUE", "liveops")},
    "TASKS_OPTIONS": {"queue_name": os.environ.get("LIVEOPS_TEST_TASKS_QUEUE", "liveops")},
}

if LIVEOPS["RUNNER"] == "celery":
    # A server process that enqueues to Celery needs the project's app, which a project's
    # package __init__ imports (Celery's Django guide); workers get it from -A already.
    import tests.celery_app  # noqa: F401

# A census of live objects on SIGUSR2, for the soak (tests/soak_probe.py).
if probe_directory := os.environ.get("LIVEOPS_TEST_PROBE"):
    from tests.soak_probe import install

    install(probe_directory)
