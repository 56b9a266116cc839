"""The signals of an operation's life, each sent once its change is committed (or, for a
long wait, once time has passed).

The model and the lifecycle send them and know nothing of who listens: the live
regions, the live lists and the runners are receivers (``liveops._receivers``,
``liveops.runners``), connected in ``LiveOpsConfig.ready()`` in the order they must
run (a page and a list show a change before a runner can act on it).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from django.dispatch import Signal

__all__ = ["Transition", "operation_changed", "operation_enqueued", "operation_waiting"]

logger = logging.getLogger("liveops")


class Transition(enum.Enum):
    """What changed an operation's stored state (``operation_changed``'s ``transition``)."""

    STARTED = "started"  # a runner claimed it
    FINISHED = "finished"  # its run stored the end it reached
    INTERRUPTED = "interrupted"  # ended from outside its run: lost, or its process stopped
    NOT_QUEUED = "not_queued"  # ended as failed: no runner would take it, or none took it in time
    CANCEL_REQUESTED = "cancel_requested"  # a viewer asked; one still waiting ended cancelled
    RETRIED = "retried"  # a new attempt, enqueued next

    @property
    def published_by_its_run(self) -> bool:
        """Return whether the run's own channel sends the regions this change alters."""
        return self in (Transition.STARTED, Transition.FINISHED)


#: An operation was saved to be run: ``sender`` is its model, ``pk`` its primary key.
operation_enqueued = Signal()

#: A transition was committed: ``sender`` is the model, ``op`` the operation as stored
#: after it, ``transition`` a ``Transition``.
operation_changed = Signal()

#: No worker has started ``op`` for longer than ``WAIT_WARNING_SECONDS`` (``waited``, a
#: ``timedelta``): nothing stored changed, time passed. Sent by the watchdog of a server
#: whose sockets show the operation, when the wait is first flagged and then each minute,
#: and by every ``manage.py liveops_sweep``; an alert of your own can receive it too.
operation_waiting = Signal()


def announce(signal: Signal, sender: type, **kwargs: Any) -> None:
    """Send ``signal`` to every receiver; one that fails is logged and the others still run.

    The change is committed by then: a list that cannot render must not keep the runner
    from taking the operation, nor undo what is stored.
    """
    for receiver, result in signal.send_robust(sender, **kwargs):
        if isinstance(result, Exception):
            logger.error("liveops: %r failed on %s", receiver, kwargs, exc_info=result)
