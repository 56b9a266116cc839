"""Helpers for testing your own operations (see docs/testing.md).

- ``RecordingProgress``: a ``p`` to pass to ``run()`` in a plain unit test. It
  validates its arguments as ``Progress`` does (it *is* a ``Progress``, driven by
  an in-memory run instead of the database and the publisher), records every call,
  and shows the resulting state as plain attributes.
- The ``liveops_run`` pytest fixture: run a saved operation through the real
  ``execute()`` and look at what its viewers were sent. Enable it with
  ``pytest_plugins = ["liveops.testing"]``.

``MockProgress``, django-liveops 0.4's name, still imports, with a DeprecationWarning.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from django.db.models import Model
from django.utils import timezone

from liveops._state import LiveState, Phase, StageState, StateView, close_open_stages, json_values
from liveops.exceptions import OperationCancelled
from liveops.progress import Progress

if TYPE_CHECKING:
    from liveops.models import LiveOperation

__all__ = ["Call", "LiveRun", "LiveRunRecord", "RecordingProgress"]

T = TypeVar("T")


class Call(NamedTuple):
    """One call made on a ``RecordingProgress``: compares equal to ``(name, args, kwargs)``."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class _Unnamed:
    """Stands for the operation when ``RecordingProgress`` was given none."""

    def __str__(self) -> str:
        return "The operation"


class _MemoryRun:
    """A ``progress.RunControl`` kept in memory: nothing is stored or sent."""

    def __init__(self, op: object, declared: Sequence[str], log_tail: int) -> None:
        self.op = op
        self.declared_stage_names = tuple(declared)
        self.extra_region_names = tuple(getattr(op, "extra_regions", ()))
        self.state = LiveState(StateView(), log_tail)
        self.next_op: Model | None = None
        self.state.start()
        self.interrupt_requested = False
        self.stage_states: dict[str, StageState] = dict.fromkeys(declared, StageState.PENDING)

    def set_stage(self, name: str, stage_state: StageState) -> None:
        if self.state.current().phase.is_terminal:
            return
        self.stage_states[name] = stage_state
        self.state.set_stages(tuple(self.stage_states.items()))

    def swap(self, region: str, html: str) -> None:
        if not self.state.current().phase.is_terminal:
            self.state.set_extra(region, html)

    def cancel_requested(self) -> bool:  # pragma: no cover - RecordingProgress decides itself
        return False

    def finish_ok(self, context: Mapping[str, Any]) -> None:
        # What the result template gets: JSON values only (dates become strings).
        self._finish(Phase.FINISHED_OK, result_context=json_values(context))

    def finish_chained(self, next_op: Model, context: Mapping[str, Any]) -> None:
        # Nothing is saved or enqueued: the test asserts on RecordingProgress.next_op.
        self.next_op = next_op
        chained = {"op": "", "url": "", "title": str(next_op)}
        result = json_values(context)
        self._finish(Phase.FINISHED_OK, result_context=result, chained_to=chained)

    def finish_error(self, message: str, traceback: str) -> None:
        self._finish(Phase.FINISHED_ERROR, error_message=message, traceback=traceback)

    def _finish(self, phase: Phase, **ending: Any) -> None:
        self.stage_states = close_open_stages(self.stage_states, phase)
        self.state.finish(phase, stages=tuple(self.stage_states.items()), **ending)


class RecordingProgress(Progress):
    """A ``Progress`` for unit tests: no database, no channel layer, every call recorded.

    ``op`` (optional) supplies the declared ``stages``, which ``stage()`` then
    checks names against, as the real one does; or pass ``stages`` directly.
    ``check_cancelled()`` returns ``cancel_after`` times, then raises
    ``OperationCancelled`` on every later check (``None``, the default: never;
    ``0``: at the first check); ``cancel()`` makes the next check raise.
    ``p.track()`` checks between items, as the real one does: those checks count,
    and are not recorded in ``calls``.

    Like the page, the state keeps clipped texts, the percent clamped to 0-100
    and the result context as JSON gives it back; unlike the page, it keeps every
    log line unless ``log_tail`` limits them.
    """

    def __init__(
        self,
        op: LiveOperation | None = None,
        *,
        stages: Sequence[str] | None = None,
        cancel_after: int | None = None,
        log_tail: int | None = None,
    ) -> None:
        declared = list(stages if stages is not None else (op.stages if op is not None else ()))
        self._memory = _MemoryRun(
            op if op is not None else _Unnamed(),
            declared,
            log_tail if log_tail is not None else 2**62,
        )
        super().__init__(self._memory)
        #: Every call, in order: ``Call(name, args, kwargs)``.
        self.calls: list[Call] = []
        #: How many times cancellation was checked (by ``run()`` or by ``track()``).
        self.cancel_checks = 0
        self.cancel_after = cancel_after
        self._cancelled = False

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call(name, args, kwargs))

    # --- the Progress API, recorded ------------------------------------------------

    def status(self, text: str, level: str = "info") -> None:
        self._record("status", text, level=level)
        super().status(text, level)

    def percent(self, value: float) -> None:
        self._record("percent", value)
        super().percent(value)

    def log(self, line: object) -> None:
        self._record("log", line)
        super().log(line)

    def track(
        self,
        iterable: Iterable[T],
        total: int | None = None,
        label: str | None = None,
        unit: str = "item",
    ) -> Iterator[T]:
        self._record("track", iterable, total=total, label=label, unit=unit)
        return super().track(iterable, total, label, unit)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._record("stage", name)
        with super().stage(name):
            yield

    def result(self, context: Mapping[str, Any] | None = None, **extra: Any) -> None:
        self._record("result", context, **extra)
        super().result(context, **extra)

    def swap(
        self,
        region: str,
        html: str | None = None,
        *,
        template: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self._record("swap", region, html, template=template, context=context)
        super().swap(region, html, template=template, context=context)

    def chain_to(
        self, next_op: Model, context: Mapping[str, Any] | None = None, **extra: Any
    ) -> None:
        self._record("chain_to", next_op, context, **extra)
        super().chain_to(next_op, context, **extra)

    def error(self, message: str) -> None:
        self._record("error", message)
        super().error(message)

    def check_cancelled(self) -> None:
        self._record("check_cancelled")
        self._check_cancelled()

    def _check_cancelled(self) -> None:  # track() checks here too, unrecorded
        self.cancel_checks += 1
        limit = self.cancel_after
        if self._cancelled or (limit is not None and self.cancel_checks > limit):
            self._cancelled = True
            raise OperationCancelled()

    # --- test controls -------------------------------------------------------------

    def cancel(self) -> None:
        """Make the next ``check_cancelled()`` raise, as a viewer's cancel would."""
        self._cancelled = True

    # --- the resulting state -------------------------------------------------------

    @property
    def view(self) -> StateView:
        """The whole state, as the renderer would draw it."""
        return self._memory.state.current()

    @property
    def phase(self) -> Phase:
        """STARTED, then FINISHED_OK after ``result()`` or FINISHED_ERROR after ``error()``."""
        return self.view.phase

    @property
    def status_text(self) -> str:
        return self.view.status_text

    @property
    def status_level(self) -> str:
        return self.view.status_level

    @property
    def percent_value(self) -> float | None:
        """The percent shown (``percent`` is the method); 100 after ``result()``."""
        return self.view.percent

    @property
    def done(self) -> int:
        """The count ``track()`` reached."""
        return self.view.done

    @property
    def total(self) -> int | None:
        """The total ``track()`` counted towards, when it knew one."""
        return self.view.total

    @property
    def log_lines(self) -> list[str]:
        return [line for _, line in self.view.log_tail]

    @property
    def stages(self) -> dict[str, StageState]:
        """Each declared or entered stage with its state (a StrEnum: compare to "done")."""
        return dict(self._memory.stage_states)

    @property
    def result_context(self) -> dict[str, Any] | None:
        """The context given to ``result()``, as the result template gets it; else None."""
        context = self.view.result_context
        return None if context is None else dict(context)

    @property
    def error_message(self) -> str:
        return self.view.error_message

    @property
    def extra_html(self) -> dict[str, str]:
        """What ``swap()`` put in each custom region."""
        return dict(self.view.extra_html)

    @property
    def next_op(self) -> Model | None:
        """The operation ``chain_to()`` continued in (neither saved nor enqueued here)."""
        return self._memory.next_op


# --- the name of django-liveops 0.4 (docs/upgrading.md) ----------------------------------


class _MockProgress(RecordingProgress):
    """``RecordingProgress`` that also answers what tests of 0.4's ``MockProgress`` assert on.

    The calls of each kind as lists (``statuses``, ``logs``, ``percents``,
    ``stages_entered``, ``chained``), ``error_message`` None until ``error()``, and the
    end written on the operation (saved when the operation is), as 0.4's fake did.
    """

    def __init__(
        self,
        op: LiveOperation | None = None,
        *,
        stages: Sequence[str] | None = None,
        cancel_after: int | None = None,
        log_tail: int | None = None,
    ) -> None:
        super().__init__(op, stages=stages, cancel_after=cancel_after, log_tail=log_tail)
        self._op = op
        self._percents: list[int] = []

    def percent(self, value: float) -> None:
        super().percent(value)
        self._percents.append(int(min(100.0, max(0.0, float(value)))))  # clamped, as shown

    def track(
        self,
        iterable: Iterable[T],
        total: int | None = None,
        label: str | None = None,
        unit: str = "item",
    ) -> Iterator[T]:
        # 0.4's track() called percent() after each item: keep those percents too.
        size = total
        if size is None:
            try:
                size = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                size = None  # an unsized iterator shows a count, not a percent
        return self._percent_steps(super().track(iterable, total, label, unit), size)

    def _percent_steps(self, items: Iterator[T], size: int | None) -> Iterator[T]:
        for done, item in enumerate(items, start=1):
            yield item
            if size is not None:
                self._percents.append(done * 100 // size if size > 0 else 100)

    def result(self, context: Mapping[str, Any] | None = None, **extra: Any) -> None:
        ending = not self.finished
        super().result(context, **extra)
        if ending and self.finished:
            self._end_operation(result_context=self.result_context)

    def error(self, message: str) -> None:
        ending = not self.finished
        super().error(message)
        if ending and self.finished:
            self._end_operation(error_message=self.view.error_message)

    def _end_operation(self, **ending: Any) -> None:
        op = self._op
        if op is None:
            return
        ok = self.phase is Phase.FINISHED_OK
        ending.update(finished_on=timezone.now(), finished_successfully=ok)
        for name, value in ending.items():
            setattr(op, name, value)
        if not op._state.adding:  # a saved operation: 0.4's tests reload it
            op.save(update_fields=list(ending))

    def _arguments(self, name: str) -> list[Any]:
        return [call.args[0] for call in self.calls if call.name == name]

    @property
    def statuses(self) -> list[tuple[str, str]]:
        """Each ``status()`` call as ``(text, level)``."""
        return [(c.args[0], c.kwargs["level"]) for c in self.calls if c.name == "status"]

    @property
    def logs(self) -> list[Any]:
        """Each line given to ``log()``, as given."""
        return self._arguments("log")

    @property
    def percents(self) -> list[int]:
        """Each percent shown, by ``percent()`` or after each item of a sized ``track()``."""
        return list(self._percents)

    @property
    def stages_entered(self) -> list[str]:
        """The name of each stage entered, in order."""
        return self._arguments("stage")

    @property
    def chained(self) -> list[Model]:
        """The operations given to ``chain_to()``."""
        return self._arguments("chain_to")

    @property
    def error_message(self) -> str | None:  # type: ignore[override]  # 0.4: None, not ""
        """The message given to ``error()``, or None."""
        return self.view.error_message if self.phase is Phase.FINISHED_ERROR else None


def __getattr__(name: str) -> Any:
    if name == "MockProgress":
        warnings.warn(
            "liveops.testing.MockProgress is deprecated; use liveops.testing.RecordingProgress.",
            DeprecationWarning,
            stacklevel=2,
        )
        return _MockProgress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the liveops_run fixture ------------------------------------------------------------


class _Texts(HTMLParser):
    """The runs of text in some HTML, whitespace collapsed, empty runs left out."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.feed(html)
        self.close()

    def handle_data(self, data: str) -> None:
        if text := " ".join(data.split()):
            self.texts.append(text)


def _inner(element: str) -> str:
    return element[element.index(">") + 1 : element.rindex("</")]


@dataclass
class LiveRunRecord:
    """What ``liveops_run(op)`` saw: the stored end and every message sent to viewers."""

    #: The operation, reloaded from the database after the run.
    op: LiveOperation
    #: ``op.get_state()`` after the run.
    phase: Phase
    #: The channel-layer messages sent for this operation, in order.
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frames(self) -> list[str]:
        """The region HTML of each message, in order (what a viewer's page applies)."""
        from liveops._updates import Update

        return [Update.from_message(message).html() for message in self.messages]

    @property
    def terminal_frame(self) -> str | None:
        """The HTML of the terminal message (the one carrying the end), or None."""
        from liveops._updates import Update

        ends = [Update.from_message(m).html() for m in self.messages if m.get("terminal")]
        return ends[-1] if ends else None

    def _applied(self, name: str) -> str:
        # The page's rules decide, as the hub's merge applies them (docs/protocol.md).
        from liveops._fragments import region_id
        from liveops._updates import Update

        updates = [Update.from_message(message) for message in self.messages]
        chunks = functools.reduce(Update.merged, updates).regions.get(name) if updates else None
        if not chunks:
            raise KeyError(f"No frame carried the {name!r} region ({region_id(self.op, name)}).")
        whole, *appended = (chunk.html for chunk in chunks)  # new log lines go at the end
        end = whole.rindex("</")
        return whole[:end] + "".join(_inner(html) for html in appended) + whole[end:]

    def region(self, name: str) -> str:
        """The HTML region ``name`` ends with once every frame is applied in order.

        ``name`` is one of status, progress, stages, log and result. Log lines sent
        as appends are added to the log; the terminal frame carries the whole log.
        """
        return self._applied(name)

    def texts(self, name: str) -> list[str]:
        """The texts of region ``name`` as it ends: each run of text between tags, in order.

        Whitespace is collapsed and empty runs are left out, so the log gives its lines.
        """
        return _Texts(self._applied(name)).texts

    def text(self, name: str) -> str:
        """The text of region ``name`` as it ends, whitespace collapsed to single spaces."""
        return " ".join(_Texts(self._applied(name)).texts)


class LiveRun(Protocol):
    """The ``liveops_run`` fixture: run ``op`` now, return what was stored and sent."""

    def __call__(self, op: LiveOperation) -> LiveRunRecord: ...


class _Sent:
    """The messages the publisher sent, from its thread, for the test's thread to read."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def add(self, group: str, message: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append((group, message))

    def of(self, group: str, since: int) -> list[dict[str, Any]]:
        with self.lock:
            return [m for g, m in self.messages[since:] if g == group]


def _make_runner(monkeypatch: Any) -> LiveRun:
    from django.db import router
    from django.test import TestCase

    from liveops._execution import execute
    from liveops._publish import Publisher, group_name

    sent = _Sent()
    real_send = Publisher.send

    async def send(self: Publisher, group: str, message: dict[str, Any]) -> None:
        sent.add(group, message)
        await real_send(self, group, message)

    monkeypatch.setattr(Publisher, "send", send)

    def run(op: LiveOperation) -> LiveRunRecord:
        if op._state.adding:
            raise ValueError(f"Save {op!r} before running it with liveops_run.")
        label, group = op.live_label(), group_name(op.live_label(), op.pk)
        since = len(sent.messages)
        # The end is published once its transaction commits: inside the test's own
        # transaction (pytest-django's plain `db`), run those callbacks here.
        using = router.db_for_write(type(op), instance=op)
        with TestCase.captureOnCommitCallbacks(using=using, execute=True):
            execute(label, op.pk)
        # No waiting here: execute() itself waits (bounded) for the end it published,
        # and a run that published none (claimed already, ended elsewhere) sends nothing.
        op.refresh_from_db()
        return LiveRunRecord(op=op, phase=op.get_state(), messages=sent.of(group, since))

    return run


try:
    import pytest
except ImportError:  # pragma: no cover - RecordingProgress needs no pytest
    pass
else:

    @pytest.fixture
    def liveops_run(monkeypatch: pytest.MonkeyPatch) -> LiveRun:
        """Return ``run(op) -> LiveRunRecord``: execute a saved operation here and now.

        The operation runs in the test's thread through ``liveops._execution.execute()``
        (whatever ``LIVEOPS["RUNNER"]`` says); every message the publisher sends for
        it is recorded. Works with ``django_db`` and ``django_db(transaction=True)``.
        """
        return _make_runner(monkeypatch)
