"""What a viewer may ask of an operation: to cancel it, or to run it again once it ended."""

from __future__ import annotations

import copy
import functools
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from liveops.lists import publish_row_on_commit
from liveops.models import LiveOperation
from liveops.publish import publish_snapshot

__all__ = ["request_cancel", "request_retry"]

#: What a new attempt starts from: everything a run and its end wrote.
FRESH_ATTEMPT: dict[str, Any] = {
    "started_on": None,
    "finished_on": None,
    "finished_successfully": False,
    "cancel_requested": False,
    "cancelled": False,
    "interrupted": False,
    "traceback": "",
    "error_message": "",
    "result_context": None,
    "status_text": "",
    "status_level": "info",
    "percent": None,
    "log": [],
    "log_seq": 0,
    "track": {},
    "current_stage": "",
    "stage_states": {},
    "heartbeat_on": None,
    "extra_html": {},
    "chained_to": None,
}


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
        regions = op.region_names() if op.finished_on is not None else ("notice",)
        transaction.on_commit(functools.partial(publish_snapshot, op, regions))
        publish_row_on_commit(type(op), op.pk)
    return True


def request_retry(op: LiveOperation) -> bool:
    """Start a new attempt of ``op`` if it has ended; return False when it has not.

    ``op.on_restart()`` resets the model's own fields first. The attempt number
    grows, so every page watching replaces its regions in place (a newer attempt
    outranks anything of an older one); the run is enqueued once this commits.
    """
    model = type(op)
    with transaction.atomic():
        ended = model._default_manager.select_for_update().filter(
            pk=op.pk, finished_on__isnull=False
        )
        fresh = ended.first()
        if fresh is None:
            return False
        fresh.on_restart()
        for name, value in FRESH_ATTEMPT.items():
            setattr(fresh, name, copy.copy(value))
        fresh.attempt += 1
        fresh.version += 1
        fresh.save()
        # The new attempt's picture first, then the run (an eager one ends at once).
        transaction.on_commit(functools.partial(publish_snapshot, fresh))
        fresh.enqueue()
    op.refresh_from_db()
    return True
