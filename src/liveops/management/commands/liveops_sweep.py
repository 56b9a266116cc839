"""``manage.py liveops_sweep``: end lost operations and report long waits (for cron)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from django.utils.timesince import timesince

from liveops._conf import get_settings
from liveops._liveness import expire_stale, flag_wait, long_waits
from liveops.lifecycle import NEVER_STARTED_MESSAGE, end_unstarted
from liveops.models import LiveOperation


class Command(BaseCommand):
    """End lost operations; report (and with ``--end-waiting`` end) those no worker started."""

    help = (
        "End as interrupted every running live operation whose heartbeat is older than "
        "LIVEOPS['STALE_SECONDS'] (its worker died), and show the end to its viewers. "
        "Report every operation no worker has started for LIVEOPS['WAIT_WARNING_SECONDS'] "
        "(its page says so too); --end-waiting ends those as failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--end-waiting",
            action="store_true",
            help="End as failed the operations waiting longer than WAIT_WARNING_SECONDS "
            "(their viewers can start them again).",
        )

    def handle(self, *args: Any, end_waiting: bool = False, **options: Any) -> None:
        """Sweep every LiveOperation model."""
        lost = waiting = 0
        for model in apps.get_models():
            if issubclass(model, LiveOperation):
                lost += self._end_lost(model)
                waiting += self._report_waits(model, end=end_waiting)
        self.stdout.write(f"{lost} lost operation(s) ended.")
        limit = get_settings().WAIT_WARNING_SECONDS
        if limit:
            done = "ended" if end_waiting else "still waiting"
            self.stdout.write(
                f"{waiting} operation(s) waiting for a worker for more than {limit:g} s {done}."
            )

    def _end_lost(self, model: type[LiveOperation]) -> int:
        ended = expire_stale(model)
        if ended:
            self.stdout.write(f"{model._meta.label}: {ended} lost operation(s) ended.")
        return ended

    def _report_waits(self, model: type[LiveOperation], *, end: bool) -> int:
        ops = long_waits(model)
        for op in ops:
            waited = flag_wait(op)  # its page and rows say so, if anyone looks
            self.stdout.write(
                f"{model._meta.label} {op.pk}: no worker has started it for "
                f"{timesince(timezone.now() - waited)}."
            )
        if ops and end:
            ended = end_unstarted(model, [op.pk for op in ops], NEVER_STARTED_MESSAGE)
            self.stdout.write(f"{model._meta.label}: {len(ended)} waiting operation(s) ended.")
        elif ops:
            self.stdout.write(
                "Check that a worker is running, reads the queue the operations are sent to "
                "and knows the task (docs/troubleshooting.md, “The operation waits forever”); "
                "--end-waiting ends them."
            )
        return len(ops)
