"""Settings of the django-liveops demo: one process, SQLite, in-memory channel layer, thread runner.

Environment variables (all optional):

- ``LIVEOPS_DEMO_DB``: the SQLite file (default: ``example/db.sqlite3``).
- ``LIVEOPS_DEMO_REDIS``: a ``redis://`` URL; live updates then go through Redis
  (channels_redis), so several server processes and outside workers share them.
- ``LIVEOPS_DEMO_RUNNER``: where operations run (default ``thread``: in the server process).
- ``LIVEOPS_DEMO_DEBUG``: ``0`` turns ``DEBUG`` off (default on).
- ``LIVEOPS_DEMO_DATABASE_URL``: ``postgres://USER[:PASSWORD]@HOST[:PORT]/NAME``;
  PostgreSQL instead of SQLite (``make demo-stack``).
- ``LIVEOPS_DEMO_CELERY_BROKER``: Celery's broker for ``LIVEOPS_DEMO_RUNNER=celery``
  (default ``redis://127.0.0.1:6379/3``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("LIVEOPS_DEMO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("LIVEOPS_DEMO_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    # Before liveops, so the demo's templates/liveops/base.html replaces the package's.
    "demo",
    "liveops",
    "channels",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language picked in the header: an operation keeps the one it was started in.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
ASGI_APPLICATION = "demo_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("LIVEOPS_DEMO_DB", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {
            # Operations write from worker threads (or processes) while pages read:
            # WAL lets readers and one writer work together, IMMEDIATE takes the write
            # lock up front instead of failing half-way, and the timeout waits for it.
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}

if os.environ.get("LIVEOPS_DEMO_DATABASE_URL"):
    _db = urlsplit(os.environ["LIVEOPS_DEMO_DATABASE_URL"])
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _db.path.lstrip("/"),
            "USER": _db.username or "",
            "PASSWORD": _db.password or "",
            "HOST": _db.hostname or "",
            "PORT": str(_db.port or ""),
        }
    }

# Celery, for LIVEOPS_DEMO_RUNNER=celery (the app is demo_site/celery.py).
CELERY_BROKER_URL = os.environ.get("LIVEOPS_DEMO_CELERY_BROKER", "redis://127.0.0.1:6379/3")
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True

if os.environ.get("LIVEOPS_DEMO_REDIS"):
    import redis

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": os.environ["LIVEOPS_DEMO_REDIS"],
                        # redis-py 8 drops idle sockets after 5 s without this.
                        "socket_timeout": None,
                        # redis-py's default pool of 100 fails a burst of connects.
                        "max_connections": 1000,
                        # Pooled connections from before a Redis restart fail once without it.
                        "retry_on_error": [redis.exceptions.ConnectionError],
                    }
                ],
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LIVEOPS = {
    "RUNNER": os.environ.get("LIVEOPS_DEMO_RUNNER", "thread"),
    "THROTTLE_HZ": 10,
}

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []  # the demo user's password is "demo"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
#: The languages django-liveops ships (the demo's own pages stay in English).
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("es", "Español"),
    ("fr", "Français"),
    ("ja", "日本語"),
    ("pl", "Polski"),
    ("pt-br", "Português (Brasil)"),
    ("uk", "Українська"),
    ("zh-hans", "简体中文"),
]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
