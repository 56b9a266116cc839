"""Settings of a project written for django-liveops 0.4.x.

The database, Redis and timings come from the environment the test gives.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "upgrade04-test-key-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",  # its runserver serves ASGI, as Channels' tutorial sets it up
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # "channels_broadcast",  # 0.4 needed it; removed by step 1 of docs/upgrading.md
    "liveops",
    "imports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "site04.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ASGI_APPLICATION = "site04.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("UPGRADE04_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("UPGRADE04_PG_PORT", "5432"),
        "USER": os.environ.get("UPGRADE04_PG_USER", "postgres"),
        "NAME": os.environ.get("UPGRADE04_PG_NAME", "upgrade04"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "login"

REDIS_URL = os.environ.get("UPGRADE04_REDIS_URL", "redis://127.0.0.1:6379/12")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # As liveops.W002 and W003 ask with redis-py 8 (docs/upgrading.md, step 2).
            "hosts": [{"address": REDIS_URL, "socket_timeout": None, "max_connections": 1000}],
            "prefix": os.environ.get("UPGRADE04_PREFIX", "up04"),
        },
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("UPGRADE04_QUEUE", "upgrade04")

# The settings of 0.4's guide, by their 0.4 names.
LIVEOPS = {
    "BASE_TEMPLATE": "base.html",
    "RUNNER": "celery",
    "THROTTLE_HZ": 10,
    "LIST_LIVE": True,
    "TOKEN_TTL_SECONDS": 3600,
    "REQUIRED_GROUP": "importers",
}
if os.environ.get("UPGRADE04_STALE_SECONDS"):  # the test's short heartbeat
    LIVEOPS["HEARTBEAT_SECONDS"] = float(os.environ["UPGRADE04_STALE_SECONDS"]) / 3
    LIVEOPS["STALE_SECONDS"] = float(os.environ["UPGRADE04_STALE_SECONDS"])
