"""What a committed change sends: the live regions it altered, and its list row.

The receivers of ``operation_changed``, ``operation_enqueued`` and ``operation_waiting``,
connected in ``LiveOpsConfig.ready()``. Each sends once the change is committed (a long
wait changes nothing stored), waits (bounded) for the send unless called on an event
loop, and never raises for a list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from django.db import router

from liveops._conf import get_settings
from liveops._fragments import render_update
from liveops._publish import await_on_publisher, get_publisher, group_name
from liveops._updates import Update
from liveops.lists import row_messages
from liveops.models import LiveOperation
from liveops.signals import Transition

logger = logging.getLogger("liveops")


# --- the live regions --------------------------------------------------------------------------


def snapshot_update(op: LiveOperation, regions: Iterable[str] | None = None) -> Update:
    """Render ``regions`` of ``op`` (all by default) as stored, for its group."""
    group = group_name(op.live_label(), op.pk)
    names = op.region_names() if regions is None else regions
    return render_update(op, op.to_view(), names, group=group, log_max=get_settings().LOG_TAIL)


def publish_snapshot(op: LiveOperation, regions: Iterable[str] | None = None) -> None:
    """Send ``regions`` of ``op`` (all by default) as stored to its viewers."""
    update = snapshot_update(op, regions)
    await_on_publisher(
        get_publisher().send(update.group, update.to_message()), f"the update of {op}"
    )


def publish_changed_regions(
    sender: type[LiveOperation], op: LiveOperation, transition: Transition, **kwargs: Any
) -> None:
    """Receive ``operation_changed``: send the regions a change from outside the run altered."""
    if not transition.published_by_its_run:
        publish_snapshot(op, altered_regions(op, transition))


def altered_regions(op: LiveOperation, transition: Transition) -> Iterable[str]:
    """Return the regions of ``op`` that a change from outside its run altered."""
    if transition is Transition.CANCEL_REQUESTED and op.finished_on is None:
        return ("notice",)  # every page says "Cancelling…"; the run's end says the rest
    if transition is Transition.INTERRUPTED:
        # Not the log: the database has none of a run that never stored its end,
        # and the lines a viewer already holds are worth keeping on screen.
        return [name for name in op.region_names() if name != "log"]
    return op.region_names()


def publish_waiting(sender: type[LiveOperation], op: LiveOperation, **kwargs: Any) -> None:
    """Receive ``operation_waiting``: the page and the lists say how long it has waited."""
    publish_snapshot(op, ("status", "notice"))
    send_row(op)


# --- the list rows -----------------------------------------------------------------------------


def publish_changed_row(
    sender: type[LiveOperation], op: LiveOperation, transition: Transition, **kwargs: Any
) -> None:
    """Receive ``operation_changed``: send the operation's row to the lists."""
    if transition is Transition.STARTED:
        _started_rows.hold(op)
    elif transition is not Transition.RETRIED:  # a retry's enqueue sends its row next
        _started_rows.drop(op)
        send_row(op)


def publish_enqueued_row(sender: type[LiveOperation], pk: Any, **kwargs: Any) -> None:
    """Receive ``operation_enqueued``: the lists show the operation as waiting."""
    publish_row(sender, pk)


def publish_row(model: type[LiveOperation], pk: Any) -> None:
    """Send the operation's row, read fresh; nothing for an operation that is gone."""
    try:
        primary = model._default_manager.using(router.db_for_write(model))  # no replica lag
        op = primary.select_related("owner").filter(pk=pk).first()
    except Exception as exc:  # a list must not break an operation
        logger.warning("liveops could not read the list row of %s %s: %r", model, pk, exc)
        return
    if op is not None:
        send_row(op)


def send_row(op: LiveOperation) -> None:
    """Send the row of ``op`` as loaded to its lists."""
    await_on_publisher(_send_all(row_messages(op)), f"the list row of {op}")


async def _send_all(messages: list[dict[str, Any]]) -> None:
    publisher = get_publisher()
    await asyncio.gather(*(publisher.send(message["group"], message) for message in messages))


class _HeldRows:
    """Rows saying "In progress", held one flush interval before they are sent.

    A run shorter than that ends first, and its end row replaces the held one: it says
    more, in one message fewer. The timers live on the publisher's loop.
    """

    def __init__(self) -> None:
        self._timers: dict[tuple[str, Any], asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()  # held, so no send is collected early

    def hold(self, op: LiveOperation) -> None:
        key, messages = (op.live_label(), op.pk), row_messages(op)
        get_publisher().loop.call_soon_threadsafe(self._arm, key, messages)

    def drop(self, op: LiveOperation) -> None:
        get_publisher().loop.call_soon_threadsafe(self._cancel, (op.live_label(), op.pk))

    def _arm(self, key: tuple[str, Any], messages: list[dict[str, Any]]) -> None:
        self._cancel(key)
        delay = get_settings().flush_interval
        self._timers[key] = asyncio.get_running_loop().call_later(
            delay, self._release, key, messages
        )

    def _release(self, key: tuple[str, Any], messages: list[dict[str, Any]]) -> None:
        del self._timers[key]
        task = asyncio.get_running_loop().create_task(_send_all(messages))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _cancel(self, key: tuple[str, Any]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()


_started_rows = _HeldRows()
