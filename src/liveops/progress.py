"""``Progress``: the ``p`` that ``run(self, p)`` reports through.

Every call changes in-memory state and returns at once; rendering and sending
happen on the publisher's thread, at most ``THROTTLE_HZ`` times a second.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from django.db.models import Model
from django.template.loader import render_to_string

from liveops._state import (
    ERROR_MAX,
    EXTRA_HTML_MAX,
    STAGE_NAME_MAX,
    STATUS_LEVELS,
    STATUS_MAX,
    LiveState,
    StageState,
    clip,
)
from liveops.exceptions import OperationCancelled, OperationInterrupted

__all__ = ["Progress"]

logger = logging.getLogger("liveops")
T = TypeVar("T")

#: ``check_cancelled()`` reads the database at most this often.
CANCEL_CHECK_INTERVAL = 0.5


class RunControl(Protocol):
    """What ``Progress`` needs of the run it reports for.

    ``execution.Run`` in a worker; in unit tests, ``testing.RecordingProgress``'s
    in-memory run. Progress changes ``state`` itself (which tells the run's channel);
    the rest is what only the run can do (store, end, ask).
    """

    state: LiveState
    declared_stage_names: tuple[str, ...]
    extra_region_names: tuple[str, ...]
    #: Set when the process is shutting down: the next check raises.
    interrupt_requested: bool

    @property
    def op(self) -> object:
        """The operation (for messages and templates); a stand-in object in unit tests."""
        ...

    def set_stage(self, name: str, stage_state: StageState) -> None: ...
    def swap(self, region: str, html: str) -> None: ...
    def cancel_requested(self) -> bool: ...
    def finish_ok(self, context: Mapping[str, Any]) -> None: ...
    def finish_chained(self, next_op: Model, context: Mapping[str, Any]) -> None: ...
    def finish_error(self, message: str, traceback: str) -> None: ...


class Progress:
    """Report the progress of one running operation."""

    def __init__(self, run: RunControl) -> None:
        self._run = run
        self._state: LiveState = run.state
        self._finished = False
        self._warned = False
        self._next_cancel_check = 0.0

    # --- live progress -----------------------------------------------------------

    def status(self, text: str, level: str = "info") -> None:
        """Show ``text`` as the status line; ``level`` is info, success, warning or error."""
        if level not in STATUS_LEVELS:
            raise ValueError(f"level must be one of {', '.join(STATUS_LEVELS)}, not {level!r}.")
        if self._accepting("status"):
            self._state.set_status(text, level)

    def percent(self, value: float) -> None:
        """Show ``value`` percent done, clamped to 0-100."""
        number = float(value)
        if number != number:  # NaN would poison every later comparison
            raise ValueError(f"percent must be a number, not {value!r}.")
        clamped = min(100.0, max(0.0, number))
        if self._accepting("percent"):
            self._state.set_percent(clamped)

    def log(self, line: object) -> None:
        """Append ``line`` to the log."""
        if self._accepting("log"):
            self._state.add_log((line,))

    def track(
        self,
        iterable: Iterable[T],
        total: int | None = None,
        label: str | None = None,
        unit: str = "item",
    ) -> Iterator[T]:
        """Yield from ``iterable`` while showing how many items are done.

        The total comes from ``total`` or ``len(iterable)``; an unsized iterator
        is never loaded into memory: the page then shows a count, not a percent.
        Cancellation is checked between items.
        """
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        label_text = "" if label is None else clip(str(label), STATUS_MAX)
        state, accepting = self._state, self._accepting
        if accepting("track"):
            state.set_count(0, total, label_text, unit)
        for done, item in enumerate(iterable, start=1):
            yield item
            if accepting("track"):
                state.set_count(done, total, label_text, unit)
            self._check_cancelled()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Mark stage ``name`` active inside the block, then done (or failed, or cancelled)."""
        if not self._accepting("stage"):
            yield
            return
        declared = self._run.declared_stage_names
        if len(name) > STAGE_NAME_MAX:
            raise ValueError(f"Stage names are at most {STAGE_NAME_MAX} characters: {name[:50]!r}…")
        if declared and name not in declared:
            owner = type(self._run.op).__name__
            raise ValueError(f"Unknown stage {name!r}; {owner}.stages is {list(declared)!r}.")
        self._run.set_stage(name, StageState.ACTIVE)
        try:
            yield
        except OperationCancelled:
            self._run.set_stage(name, StageState.CANCELLED)
            raise
        except BaseException:
            self._run.set_stage(name, StageState.FAILED)
            raise
        self._run.set_stage(name, StageState.DONE)

    def swap(
        self,
        region: str,
        html: str | None = None,
        *,
        template: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """Replace the custom region ``region`` with ``html``, or with ``template`` rendered.

        The region must be named in the model's ``extra_regions``. The content is
        TRUSTED HTML: it goes into the page as it is, so escape anything a user wrote
        (a template with autoescaping does). ``template`` is rendered with ``op`` and
        ``context``, in the operation's language. Each swap is stored (one UPDATE) so
        that a page opened or reconnected later shows it: call it a few times a second
        at most, not per item.
        """
        if (html is None) == (template is None):
            raise TypeError("p.swap() takes either html or template=, not both or neither.")
        declared = self._run.extra_region_names
        if region not in declared:
            owner = type(self._run.op).__name__
            raise ValueError(
                f"Unknown region {region!r}: add it to {owner}.extra_regions "
                f"(now {list(declared)!r})."
            )
        if template is not None:
            html = render_to_string(template, {"op": self._run.op, **(context or {})})
        content = str(html)
        if len(content) > EXTRA_HTML_MAX:
            raise ValueError(
                f"p.swap() content is at most {EXTRA_HTML_MAX:,} characters, not {len(content):,}."
            )
        if self._accepting("swap"):
            self._run.swap(region, content)

    # --- endings -----------------------------------------------------------------

    def result(self, context: Mapping[str, Any] | None = None, **extra: Any) -> None:
        """Finish successfully with ``context`` (and ``extra``) for the result template."""
        if not self._accepting("result"):
            return
        self._run.finish_ok({**(context or {}), **extra})
        self._finished = True

    def chain_to(
        self, next_op: Model, context: Mapping[str, Any] | None = None, **extra: Any
    ) -> None:
        """Finish successfully and continue in ``next_op``; watching pages switch to it.

        An unsaved ``next_op`` is saved here, with this operation's owner and language
        unless it has its own; it must not have started. It is enqueued in the same
        transaction that stores this end, so it runs only if this end is stored. The
        result shows ``context`` (and ``extra``) and a link to ``next_op``, which
        ``liveops.js`` follows in place (see docs/chaining.md).
        """
        if not self._accepting("chain_to"):
            return
        self._run.finish_chained(next_op, {**(context or {}), **extra})
        self._finished = True

    def error(self, message: str) -> None:
        """Finish with an error; the viewer sees ``message``."""
        if not self._accepting("error"):
            return
        self._run.finish_error(clip(str(message), ERROR_MAX), traceback="")
        self._finished = True

    def check_cancelled(self) -> None:
        """Raise OperationCancelled when a cancel was requested (reads at most every 0.5 s)."""
        self._check_cancelled()

    def _check_cancelled(self) -> None:  # also between the items of track()
        if self._run.interrupt_requested:
            raise OperationInterrupted()
        now = time.monotonic()
        if now < self._next_cancel_check:
            return
        self._next_cancel_check = now + CANCEL_CHECK_INTERVAL
        if self._run.cancel_requested():
            raise OperationCancelled()

    @property
    def finished(self) -> bool:
        """Return whether ``result()`` or ``error()`` was called."""
        return self._finished

    def _accepting(self, call: str) -> bool:
        if not self._finished:
            return True
        if not self._warned:
            self._warned = True
            logger.warning(
                "%s finished already; p.%s() and later calls are ignored.", self._run.op, call
            )
        return False


#: django-liveops 0.4's ``p`` classes, one per output; here one ``Progress`` serves both.
_RENAMED_04 = {"WebProgress": "Progress", "TextProgress": "Progress"}


def __getattr__(name: str) -> Any:
    """Answer 0.4's ``WebProgress`` and ``TextProgress`` (type hints of its run() bodies)."""
    if name in _RENAMED_04:
        warnings.warn(
            f"liveops.progress.{name} is deprecated; use liveops.progress.Progress.",
            DeprecationWarning,
            stacklevel=2,
        )
        return Progress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
