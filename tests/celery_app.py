"""The tests' Celery app, set up the way Celery's Django guide sets up a project's.

    celery -A tests.celery_app worker

Every process that sends tasks must import it first (the tests do), or Celery falls back
to its default app and an AMQP broker.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_pg")

app = Celery("liveops_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
