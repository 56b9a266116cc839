"""What a viewer may ask of an operation: to cancel it."""

from __future__ import annotations

import functools

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from liveops.models import LiveOperation
from liveops.publish import publish_snapshot
from liveops.state import ALL_REGIONS

__all__ = ["request_cancel"]


def request_cancel(op: LiveOperation) -> bool:
    """Ask ``op`` to stop; return False when it has ended already.

    A running operation sees the request at its next ``p.check_cancelled()`` (which
    ``p.track()`` calls) and ends as cancelled. One that has not started ends as
    cancelled now: the claim of a runner that comes later finds it finished. Both
    UPDATEs are conditional, so a request racing the claim or the end is decided
    by the database, and a real end that came first is kept.
    """
    running = type(op)._default_manager.filter(pk=op.pk, finished_on__isnull=True)
    with transaction.atomic():
        if not running.update(cancel_requested=True, version=F("version") + 1):
            return False
        running.filter(started_on__isnull=True).update(
            finished_on=timezone.now(),
            finished_successfully=False,
            cancelled=True,
            version=F("version") + 1,
        )
        op.refresh_from_db()
        # Every page shows "Cancelling…", or the end, once this is stored.
        regions = ALL_REGIONS if op.finished_on is not None else ("notice",)
        transaction.on_commit(functools.partial(publish_snapshot, op, regions))
    return True
