"""``manage.py liveops_sweep``: end lost operations (for cron, next to the live watchdog)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand

from liveops._liveness import expire_stale
from liveops.models import LiveOperation


class Command(BaseCommand):
    """End every running operation whose heartbeat is older than ``STALE_SECONDS``."""

    help = (
        "End as interrupted every running live operation whose heartbeat is older than "
        "LIVEOPS['STALE_SECONDS'] (its worker died), and show the end to its viewers."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Sweep every LiveOperation model."""
        total = 0
        for model in apps.get_models():
            if issubclass(model, LiveOperation):
                ended = expire_stale(model)
                total += ended
                if ended:
                    self.stdout.write(f"{model._meta.label}: {ended} lost operation(s) ended.")
        self.stdout.write(f"{total} lost operation(s) ended.")
