"""What a viewer may ask of an operation: to cancel it, or to run it again once it ended."""

from __future__ import annotations

import functools

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from liveops.lifecycle import UNFINISHED, fresh_attempt, in_phase
from liveops.lists import publish_row_on_commit
from liveops.models import LiveOperation
from liveops.publish import publish_snapshot
from liveops.state import Phase

__all__ = ["request_cancel", "request_retry"]


def request_cancel(op: LiveOperation) -> bool:
    """Ask ``op`` to stop; return False when it has ended already.

    A running operation sees the request at its next ``p.check_cancelled()`` (which
    ``p.track()`` calls) and ends as cancelled. One that has not started ends as
    cancelled now: the claim of a runner that comes later finds it finished. Both
    UPDATEs are conditional, so a request racing the claim or the end is decided
    by the database, and a real end that came first is kept.
    """
    unfinished = type(op)._default_manager.filter(UNFINISHED, pk=op.pk)
    with transaction.atomic():
        if not unfinished.update(cancel_requested=True, version=F("version") + 1):
            return False
        in_phase(unfinished, Phase.NOT_STARTED).update(
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
        for name, value in fresh_attempt().items():
            setattr(fresh, name, value)
        fresh.attempt += 1
        fresh.version += 1
        fresh.save()
        # The new attempt's picture first, then the run (an eager one ends at once).
        transaction.on_commit(functools.partial(publish_snapshot, fresh))
        fresh.enqueue()
    op.refresh_from_db()
    return True
