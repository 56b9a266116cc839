"""Settings for the tests that need PostgreSQL, Redis and real worker processes.

    pytest -m postgres --ds=tests.settings_pg

pytest-django creates the test database ``test_liveops_<pid>`` (one per pytest process,
so parallel runs do not trample each other). Worker processes started by the tests get
its name in ``LIVEOPS_TEST_PG_NAME`` and use it as it is.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("LIVEOPS_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("LIVEOPS_TEST_PG_PORT", "5432"),
        "USER": os.environ.get("LIVEOPS_TEST_PG_USER", "postgres"),
        "NAME": os.environ.get("LIVEOPS_TEST_PG_NAME")
        or os.environ.get("LIVEOPS_TEST_PG_DB", "test"),
        "TEST": {"NAME": f"test_liveops_{os.getpid()}"},
    }
}

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
# tests.testapp has no migrations and points at auth_user. Django creates the tables of
# unmigrated apps before it migrates the others, which PostgreSQL (unlike SQLite) refuses
# for a foreign key; creating every table from the models at once avoids that.
MIGRATION_MODULES = {"auth": None, "contenttypes": None, "sessions": None, "django_tasks_db": None}
# QUEUES: [] lets each test use a queue of its own.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}

# Redis database 14 holds the tests' Celery queues; each test session uses its own queues.
CELERY_BROKER_URL = os.environ.get("LIVEOPS_TEST_CELERY_BROKER", "redis://127.0.0.1:6379/14")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
# What docs/runners.md told users before the app loaded its runner itself; still honoured.
# LIVEOPS_TEST_CELERY_GUIDE=1 leaves it out, as Celery's Django guide does.
if os.environ.get("LIVEOPS_TEST_CELERY_GUIDE") != "1":
    CELERY_IMPORTS = ["liveops.runners.celery"]
