"""``manage.py liveops_upgrade``: finish the move from django-liveops 0.4 (its rows).

Run it once after ``makemigrations`` and ``migrate`` (docs/upgrading.md); running it
again changes nothing. A row 0.4 left is one this package never touched: version 0
and a percent of 0 (0.4 stored 0 in every row; this package stores none until a run
reports one, and every change it makes raises the version). For those rows it:

- stores 100 % for a success and no percent otherwise, so an old page shows no 0 % bar;
- copies a failure's message to ``error_message`` (0.4 kept ``p.error()``'s message in
  ``traceback``, where only staff see it here), unless it is a Python traceback;
- gives a running row a heartbeat from now: 0.4 beat none, so nothing could tell that
  its worker is gone; once ``STALE_SECONDS`` pass with no run beating it,
  ``liveops_sweep`` (or the next page that shows it) ends it as lost.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from liveops.models import LiveOperation

PYTHON_TRACEBACK = "Traceback (most recent call last)"


class Command(BaseCommand):
    """Make the rows of django-liveops 0.4 show their state here."""

    help = (
        "After moving from django-liveops 0.4 and migrating: store the right percent of "
        "its finished rows, show its failures' messages, and give its running rows a "
        "heartbeat so that liveops_sweep ends them as lost. Safe to run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Upgrade the 0.4 rows of every LiveOperation model."""
        total = 0
        for model in apps.get_models():
            if issubclass(model, LiveOperation) and model._meta.managed:
                upgraded = upgrade_rows(model)
                total += upgraded
                if upgraded:
                    self.stdout.write(f"{model._meta.label}: {upgraded} row(s) from 0.4 upgraded.")
        self.stdout.write(f"{total} row(s) from django-liveops 0.4 upgraded.")


def upgrade_rows(model: type[LiveOperation]) -> int:
    """Upgrade the rows of ``model`` that django-liveops 0.4 left; return how many."""
    with transaction.atomic(using=model._default_manager.db):
        old = model._default_manager.select_for_update().filter(version=0, percent=0)
        count = len(old.values_list("pk", flat=True))  # locks them until the commit
        if not count:
            return 0
        failed = Q(finished_on__isnull=False, finished_successfully=False, cancelled=False)
        old.filter(failed, error_message="").exclude(
            traceback__startswith=PYTHON_TRACEBACK
        ).exclude(traceback="").update(error_message=F("traceback"))
        old.filter(started_on__isnull=False, finished_on__isnull=True, cancelled=False).update(
            heartbeat_on=timezone.now()
        )
        succeeded = Q(finished_on__isnull=False, finished_successfully=True, cancelled=False)
        old.filter(succeeded).update(percent=100, version=1)
        old.update(percent=None, version=1)  # the rest: what remains unmarked
    return count
