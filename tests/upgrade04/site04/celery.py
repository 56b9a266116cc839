"""The Celery app, set up as Celery's "First steps with Django" guide says."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site04.settings")

app = Celery("site04")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
