"""The demo's Celery app, set up as in Celery's Django guide (used by ``make demo-stack``).

    cd example && celery -A demo_site worker --pool solo

Settings come from ``demo_site.settings`` under the ``CELERY_`` prefix. The package
``demo_site`` imports this module, so web processes send through this app rather
than through Celery's fallback (an AMQP broker on localhost).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")

app = Celery("demo_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
