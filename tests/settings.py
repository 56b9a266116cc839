"""Settings for the test suite (unit and consumer tests)."""

from __future__ import annotations

import os
import tempfile

# A file, not :memory:, so threads and server processes share it; one per pytest
# process, so parallel runs do not trample each other.
_TEST_DB = os.environ.get("LIVEOPS_TEST_DB") or os.path.join(
    tempfile.gettempdir(), f"liveops-tests-{os.getpid()}.sqlite3"
)

SECRET_KEY = "liveops-tests-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "liveops",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
ASGI_APPLICATION = "tests.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _TEST_DB,
        "TEST": {"NAME": _TEST_DB},
    }
}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Server and worker processes started by the tests pick their runner and
# heartbeat through the environment.
LIVEOPS = {
    "RUNNER": os.environ.get("LIVEOPS_TEST_RUNNER", "eager"),
    "HEARTBEAT_SECONDS": float(os.environ.get("LIVEOPS_TEST_HEARTBEAT", "10")),
    "STALE_SECONDS": float(os.environ.get("LIVEOPS_TEST_STALE", "30")),
    "WAIT_WARNING_SECONDS": float(os.environ.get("LIVEOPS_TEST_WAIT_WARNING", "120")),
    "PERSIST_PROGRESS": os.environ.get("LIVEOPS_TEST_PERSIST_PROGRESS") == "1",
}
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en"
# Hashing real passwords costs most of a second per user fixture.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_I18N = True
