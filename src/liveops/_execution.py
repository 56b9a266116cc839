"""``execute()``: the one path every runner takes to run an operation.

1. Claim the operation with a conditional UPDATE, so a second delivery runs nothing.
2. Run ``op.run(p)``, catching everything, while this process's heartbeat keeps
   the operation fresh (``_liveness.py``).
3. Store the terminal state in one transaction, unless someone else ended the
   operation meanwhile; publish it once that commits.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
import time
import traceback as tb
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any
from uuid import UUID

from django.db import InterfaceError, OperationalError, connections, router, transaction
from django.db.models import Model
from django.utils import timezone, translation
from django.utils.translation import gettext_noop

from liveops._conf import get_settings
from liveops._fragments import render_update
from liveops._liveness import heartbeat
from liveops._progress_store import progress_columns, progress_writer
from liveops._publish import get_publisher, group_name
from liveops._state import LiveState, Phase, StageState, StateView, close_open_stages, json_values
from liveops.exceptions import OperationCancelled, OperationInterrupted
from liveops.lifecycle import INTERRUPTED_MESSAGE, End, claim, end_as_interrupted, finish_run
from liveops.models import LiveOperation, get_operation_model, live_page_url
from liveops.progress import Progress

logger = logging.getLogger("liveops")

#: The end of a run whose database connection was lost (a restart, a fail-over).
DATABASE_LOST_MESSAGE = gettext_noop(
    "This operation stopped: its connection to the database was lost. You can start it again."
)
#: How long a run whose end cannot be stored, the database being unreachable, tries again.
#: A PostgreSQL restart or fail-over takes seconds; after STALE_SECONDS any viewer's server
#: ends the run as lost, and this end is then dropped. Meanwhile the worker waits here,
#: so it is alive and its task framework can record the task once the database is back.
STORE_PATIENCE_SECONDS = 60.0
_DATABASE_UNREACHABLE = (OperationalError, InterfaceError)


def execute(label: str, pk: UUID | str) -> None:
    """Claim and run the operation ``label``/``pk``; do nothing when it was claimed already."""
    with sigterm_as_exit():
        model = get_operation_model(label)
        op = claim(model, pk)
        if op is None:
            logger.info(
                "liveops: %s %s was claimed already (or is gone); not running it.", label, pk
            )
            return
        run: Run | None = None
        try:
            run = Run(op)
            heartbeat.add(run)
            _perform(run)
        except BaseException:
            # Stopped before run() could record its own end (e.g. SIGTERM at the start).
            if run is None or not run.finished:
                where = tb.format_exc()
                end_as_interrupted(
                    model, [pk], INTERRUPTED_MESSAGE, stale_only=False, traceback=where
                )
            raise
        finally:
            if run is not None:
                heartbeat.remove(run)
                if run.stores_progress:
                    progress_writer.run_ended(op)


def _perform(run: Run) -> None:
    op = run.op
    run.start()
    if op.cancel_requested:
        run.finish(End(Phase.CANCELLED))
        return
    progress = Progress(run)
    try:
        with translation.override(op.get_language()):
            op.run(progress)
    except OperationCancelled:
        run.finish(End(Phase.CANCELLED))
    except OperationInterrupted:
        message = run.op.in_its_language(INTERRUPTED_MESSAGE)
        run.finish(End(Phase.FINISHED_ERROR, message, interrupted=True))
    except Exception as exc:
        if run.lost_its_database(exc):
            message = run.op.in_its_language(DATABASE_LOST_MESSAGE)
            run.finish(End(Phase.FINISHED_ERROR, message, tb.format_exc(), interrupted=True))
        else:
            run.finish(End(Phase.FINISHED_ERROR, traceback=tb.format_exc()))
    except BaseException:
        # Ctrl-C, SystemExit: record why the operation stopped, then let the process go.
        message = run.op.in_its_language(INTERRUPTED_MESSAGE)
        run.finish(End(Phase.FINISHED_ERROR, message, tb.format_exc(), True))
        raise
    else:
        if not progress.finished:
            run.finish(End(Phase.FINISHED_OK), result_context={})


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """In a plain script's main thread, let SIGTERM unwind as SystemExit.

    Python's default for SIGTERM ends the process on the spot, leaving the
    operation "running" until its heartbeat goes stale. Servers and workers
    (uvicorn, daphne, Celery) install handlers of their own; those stay untouched.
    """
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Run:
    """One execution of an operation: its live state, its channel and its database writes."""

    def __init__(self, op: LiveOperation) -> None:
        self.op = op
        settings = get_settings()
        self.state = LiveState(op.to_view(), settings.LOG_TAIL, op.region_names())
        group = group_name(op.live_label(), op.pk)
        render = functools.partial(render_update, op, group=group, log_max=settings.LOG_TAIL)
        self._db = router.db_for_write(type(op), instance=op)
        #: Whether each flush stores the picture (then stages and swaps are stored with it).
        self.stores_progress = op.stores_progress()
        store = (
            functools.partial(progress_writer.submit, op, self._db)
            if self.stores_progress
            else None
        )
        self.channel = get_publisher().channel(group, self.state, render, store)
        self.state.on_dirty = self.channel.notify
        self.declared_stage_names = tuple(op.stages)
        self.extra_region_names = tuple(op.extra_regions)
        self._extra_html = dict(op.extra_html)
        # Shared with op.stage_states, which op.declared_stages() reads.
        op.stage_states = self._stage_states = dict(op.stage_states)
        #: Whether this run stored (or tried to store) its end.
        self.finished = False
        self.interrupt_requested = False

    def interrupt(self) -> None:
        """Ask ``run()`` to stop at its next ``check_cancelled()`` (the process is exiting)."""
        self.interrupt_requested = True

    @property
    def _queryset(self) -> Any:
        return type(self.op)._default_manager.using(self._db).filter(pk=self.op.pk)

    def start(self) -> None:
        """Publish the started state."""
        self.state.start()

    def set_stage(self, name: str, stage_state: StageState) -> None:
        """Record a stage boundary: live, and in the database (by the flush, if it stores)."""
        if self.finished:
            return
        self._stage_states[name] = stage_state.value
        self.state.set_stages(self._stages())
        if self.stores_progress:
            return
        self._queryset.update(
            stage_states=self._stage_states,
            version=self.state.version,
            heartbeat_on=timezone.now(),
        )

    def swap(self, region: str, html: str) -> None:
        """Replace a custom region: live, and in the database (by the flush, if it stores)."""
        if self.finished:
            return
        self._extra_html[region] = html
        self.state.set_extra(region, html)
        if self.stores_progress:
            return
        self._queryset.update(
            extra_html=self._extra_html, version=self.state.version, heartbeat_on=timezone.now()
        )

    def lost_its_database(self, exc: BaseException) -> bool:
        """Return whether ``run()`` failed because the database connection went away."""
        causes: list[BaseException] = []
        cause: BaseException | None = exc
        while cause is not None and cause not in causes:  # raise X from a lost connection
            causes.append(cause)
            cause = cause.__cause__ or cause.__context__
        if not any(isinstance(cause, _DATABASE_UNREACHABLE) for cause in causes):
            return False
        connection = connections[self._db]
        # Django drops a connection whose rollback failed; one still held is asked.
        return connection.connection is None or not connection.is_usable()

    def cancel_requested(self) -> bool:
        """Return whether a viewer asked to cancel (one query)."""
        return bool(self._queryset.filter(cancel_requested=True).exists())

    def finish_ok(self, context: Mapping[str, Any]) -> None:
        """Finish successfully with ``context`` for the result template."""
        self.finish(End(Phase.FINISHED_OK), result_context=json_values(context))

    def finish_chained(self, next_op: Model, context: Mapping[str, Any]) -> None:
        """Finish successfully, continuing in ``next_op``, which runs once this end commits."""
        if not isinstance(next_op, LiveOperation):
            raise TypeError(f"p.chain_to() takes a LiveOperation, not {next_op!r}.")
        if next_op.pk == self.op.pk and type(next_op) is type(self.op):
            raise ValueError("p.chain_to() cannot continue an operation in itself.")
        result = json_values(context)
        with transaction.atomic(using=self._db):
            if next_op._state.adding:
                if next_op.owner_id is None:
                    next_op.owner_id = self.op.owner_id
                next_op.language = next_op.language or self.op.language
                next_op.save()
            elif next_op.get_state() is not Phase.NOT_STARTED:
                raise ValueError(f"p.chain_to() needs an operation that has not started: {next_op}")
            chained_to = {
                "op": next_op.live_token,
                "url": live_page_url(next_op),
                "title": str(next_op),
            }
            if self.finish(End(Phase.FINISHED_OK), result_context=result, chained_to=chained_to):
                next_op.enqueue()
            else:  # ended elsewhere meanwhile: the next operation is not created either
                transaction.set_rollback(True, using=self._db)

    def finish_error(self, message: str, traceback: str) -> None:
        """Finish with an error the viewer sees as ``message``."""
        self.finish(End(Phase.FINISHED_ERROR, message, traceback))

    def finish(
        self,
        end: End,
        *,
        result_context: Mapping[str, Any] | None = None,
        chained_to: Mapping[str, str] | None = None,
    ) -> bool:
        """Store the terminal state and publish it once the transaction commits.

        Return False when it was not stored: this run finished already, or someone
        else ended the operation meanwhile.
        """
        if self.finished:
            logger.warning("liveops: %s finished already; ignoring %s.", self.op, end.phase.value)
            return False
        self.finished = True
        for name, stage_state in close_open_stages(self._stage_states, end.phase).items():
            self._stage_states[name] = stage_state.value  # in place: op.stage_states too
        view = self.state.finish(
            end.phase,
            result_context=result_context,
            error_message=end.error_message,
            traceback=end.traceback,
            interrupted=end.interrupted,
            stages=self._stages(),
            chained_to=chained_to,
        )
        try:
            return self._store_terminal(end, view)
        except BaseException:
            self.channel.close()  # nothing was stored, so nothing may be shown as final
            raise

    def _store_terminal(self, end: End, view: StateView) -> bool:
        columns = {
            **progress_columns(view),
            "result_context": view.result_context,
            "version": view.version,
            "heartbeat_on": timezone.now(),
            "chained_to": view.chained_to,
            "extra_html": self._extra_html,
        }
        if self._store_when_reachable(end, columns):
            return True
        logger.warning("liveops: %s was ended elsewhere; dropping its own end.", self.op)
        self.channel.close()
        return False

    def _store_when_reachable(self, end: End, columns: Mapping[str, Any]) -> bool:
        """Store the end with ``finish_run``; while the database is unreachable, try again.

        Only outside a transaction: inside one (``p.chain_to()``'s, or ``run()``'s own), the
        lost connection took the transaction with it, and the error goes to its owner.
        """
        connection = connections[self._db]
        deadline = time.monotonic() + STORE_PATIENCE_SECONDS
        pause, warned = 0.1, False
        while True:
            try:
                return finish_run(self.op, end, columns, using=self._db, then=self.channel.finish)
            except _DATABASE_UNREACHABLE as exc:
                if connection.in_atomic_block or time.monotonic() + pause > deadline:
                    raise
                if not warned:
                    warned = True
                    logger.warning(
                        "liveops: %s cannot store its end, the database is unreachable (%s); "
                        "trying again for up to %.0f s.",
                        self.op,
                        exc,
                        STORE_PATIENCE_SECONDS,
                    )
                with contextlib.suppress(*_DATABASE_UNREACHABLE):
                    connection.close()  # the next try opens a new one
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _stages(self) -> tuple[tuple[str, StageState], ...]:
        return self.op.declared_stages()  # reads the same dict as self._stage_states
