"""The Progress API, run through the real ``execute()``: what is stored and what is published."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lxml.html import HtmlElement

from liveops._execution import execute
from liveops._publish import get_publisher
from liveops._state import ERROR_MAX, STAGE_NAME_MAX, Phase
from liveops._updates import Update
from liveops.lifecycle import INTERRUPTED_MESSAGE
from liveops.progress import Progress
from tests.dom import parse
from tests.testapp.models import Scripted

pytestmark = pytest.mark.django_db(transaction=True)

TIMES = "\N{MULTIPLICATION SIGN}"  # the count reads "3 TIMES row done"
Step = Callable[[Progress], object]
Message = dict[str, Any]


class Published:
    """Stands in for the channel layer: records every message the publisher sends."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()

    async def send(self, group: str, message: Message) -> None:
        if not group.startswith("liveop."):
            return  # an operations list row (liveops.lists), not this operation's page
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> bool:
        """Wait until a message matching ``predicate`` was sent; return whether one was."""
        with self._changed:
            return self._changed.wait_for(lambda: any(predicate(m) for m in self.messages), timeout)

    def terminal(self) -> HtmlElement:
        """Return the one terminal message, parsed (waiting for it, see test_execute_waits…)."""
        self.wait_for(lambda m: bool(m["terminal"]))
        terminal = [m for m in self.messages if m["terminal"]]
        assert len(terminal) == 1
        return root(terminal[0])


def root(message: Message) -> HtmlElement:
    return parse(Update.from_message(message).html())


def region(tree: HtmlElement, name: str) -> HtmlElement:
    (found,) = [el for el in tree if el.get("id", "").endswith(f"-{name}")]
    return found


def text(el: HtmlElement) -> str:
    """Return the element's text as a reader hears it: element boundaries count as spaces."""
    return " ".join(" ".join(el.itertext()).split())


def shows(name: str, wanted: str) -> Callable[[Message], bool]:
    """Match a message whose region ``name`` contains the text ``wanted``."""

    def match(message: Message) -> bool:
        found = [el for el in root(message) if el.get("id", "").endswith(f"-{name}")]
        return bool(found) and wanted in text(found[0])

    return match


@pytest.fixture(autouse=True)
def fast_flushes(settings: Any) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 100}


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Published:
    recorder = Published()
    monkeypatch.setattr(get_publisher(), "send", recorder.send)
    return recorder


@pytest.fixture
def op(user: Any) -> Scripted:
    return Scripted.objects.create(owner=user)


def run(op: Scripted, *steps: Step) -> Scripted:
    """Execute ``op`` with ``steps`` as its run(); return it as stored afterwards."""
    Scripted.SCRIPTS[op.pk] = list(steps)
    try:
        execute(op.live_label(), op.pk)
    finally:
        Scripted.SCRIPTS.pop(op.pk, None)
    op.refresh_from_db()
    return op


def liveops_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "liveops" and r.levelno >= logging.WARNING
    ]


def test_execute_returns_after_the_terminal_message_was_sent(
    op: Scripted, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker process (Celery, a management command) may exit once execute() returns:
    # the terminal message must be out by then, not still queued on the publisher.
    # Such a process never served a WebSocket, so no server loop was ever bound.
    monkeypatch.setattr(get_publisher(), "_server_loop", None)

    async def slow_send(group: str, message: Message) -> None:
        await asyncio.sleep(0.3)  # a remote layer's latency
        await published.send(group, message)

    monkeypatch.setattr(get_publisher(), "send", slow_send)
    Scripted.SCRIPTS[op.pk] = [lambda p: p.result(n=1)]
    try:
        execute(op.live_label(), op.pk)
        sent_on_return = [m["terminal"] for m in published.messages]
    finally:
        Scripted.SCRIPTS.pop(op.pk, None)
    assert sent_on_return[-1:] == [True]


# --- percent and status --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [(150, "100"), (-5, "0"), (42.4, "42"), (float("inf"), "100"), (float("-inf"), "0")],
)
def test_percent_is_clamped_to_0_100(
    op: Scripted, published: Published, value: float, shown: str
) -> None:
    op = run(op, lambda p: p.percent(value), lambda p: p.error("stop"))
    bar = region(published.terminal(), "progress").find(".//*[@role='progressbar']")
    assert bar.get("aria-valuenow") == shown
    assert f"{shown}%" in text(bar)


def test_percent_rejects_nan(op: Scripted, published: Published) -> None:
    raised: list[str] = []

    def step(p: Progress) -> None:
        try:
            p.percent(float("nan"))
        except ValueError as exc:
            raised.append(str(exc))

    op = run(op, lambda p: p.percent(30), step, lambda p: p.error("stop"))
    assert raised == ["percent must be a number, not nan."]
    bar = region(published.terminal(), "progress").find(".//*[@role='progressbar']")
    assert bar.get("aria-valuenow") == "30"


def test_status_level_is_validated(op: Scripted, published: Published) -> None:
    raised: list[str] = []

    def step(p: Progress) -> None:
        try:
            p.status("Exploded", "fatal")
        except ValueError as exc:
            raised.append(str(exc))
        p.status("Careful", "warning")
        p.result()

    op = run(op, step)
    (message,) = raised
    assert "'fatal'" in message
    assert "info, success, warning, error" in message
    status = text(region(published.terminal(), "status"))
    assert status == "Finished : Warning: Careful"
    assert op.get_state() is Phase.FINISHED_OK


# --- track ---------------------------------------------------------------------------


def test_track_takes_the_total_from_len(op: Scripted, published: Published) -> None:
    seen: list[str] = []
    midway: list[bool] = []

    def step(p: Progress) -> None:
        for index, item in enumerate(p.track(["a", "b", "c", "d"], label="Rows")):
            seen.append(item)
            if index == 2:  # two items are done now
                midway.append(published.wait_for(shows("progress", "50% Rows (2/4)")))

    op = run(op, step)
    assert seen == ["a", "b", "c", "d"]
    assert midway == [True]
    progress = region(published.terminal(), "progress")
    assert text(progress) == "100% 100% Rows (4/4)"
    assert progress.find(".//*[@role='progressbar']").get("aria-valuenow") == "100"


def test_track_takes_an_explicit_total(op: Scripted, published: Published) -> None:
    midway: list[bool] = []

    def step(p: Progress) -> None:
        for index, _ in enumerate(p.track(iter(range(8)), total=8, label="Files")):
            if index == 2:
                midway.append(published.wait_for(shows("progress", "25% Files (2/8)")))

    run(op, step)
    assert midway == [True]


def test_track_counts_an_unsized_iterator_lazily_without_a_percent(
    op: Scripted, published: Published
) -> None:
    pulled: list[int] = []
    pulled_when_seen: list[int] = []
    midway: list[Message] = []

    def rows() -> Iterator[int]:
        for n in range(5):
            pulled.append(n)
            yield n

    def step(p: Progress) -> None:
        for index, _ in enumerate(p.track(rows(), label="Scanning", unit="row")):
            pulled_when_seen.append(len(pulled))
            if index == 3 and published.wait_for(shows("progress", "3 rows done")):
                midway.append(next(m for m in published.messages if shows("progress", "3 rows")(m)))
        p.error("stop")  # a failure keeps the count on the page, as it was

    run(op, step)
    assert pulled_when_seen == [1, 2, 3, 4, 5]  # one item pulled per step, never ahead
    (message,) = midway
    bar = region(root(message), "progress").find(".//*[@role='progressbar']")
    assert bar.get("aria-valuenow") is None
    assert bar.get("aria-valuetext") == "3 rows"
    assert text(bar) == "Scanning : 3 rows done"
    final = region(published.terminal(), "progress")
    assert text(final) == "Scanning : 5 rows done"
    assert "%" not in text(final)


def test_track_checks_for_cancel_between_items(op: Scripted, published: Published) -> None:
    pulled: list[int] = []

    def rows() -> Iterator[int]:
        for n in range(5):
            pulled.append(n)
            yield n

    def step(p: Progress) -> None:
        for _ in p.track(rows()):
            Scripted.objects.filter(pk=op.pk).update(cancel_requested=True)

    op = run(op, step)
    assert pulled == [0]
    assert op.get_state() is Phase.CANCELLED


# --- stages --------------------------------------------------------------------------


def test_stage_rejects_an_undeclared_name(op: Scripted, published: Published) -> None:
    raised: list[str] = []

    def step(p: Progress) -> None:
        try:
            with p.stage("Nope"):
                raised.append("entered")
        except ValueError as exc:
            raised.append(str(exc))

    op = run(op, step)
    assert raised == ["Unknown stage 'Nope'; Scripted.stages is ['Prepare', 'Work']."]
    assert op.stage_states == {}
    assert op.get_state() is Phase.FINISHED_OK


def test_stages_are_marked_active_done_and_failed(op: Scripted, published: Published) -> None:
    inside: list[tuple[dict[str, str], bool]] = []

    def prepare(p: Progress) -> None:
        with p.stage("Prepare"):
            stored = Scripted.objects.get(pk=op.pk)
            live = published.wait_for(shows("stages", "Prepare (in progress) Work (pending)"))
            inside.append((stored.stage_states, live))
        stored = Scripted.objects.get(pk=op.pk)
        inside.append((stored.stage_states, True))

    def work(p: Progress) -> None:
        with p.stage("Work"):
            raise RuntimeError("disk full")

    op = run(op, prepare, work)
    assert inside == [
        ({"Prepare": "active"}, True),
        ({"Prepare": "done"}, True),
    ]
    assert op.get_state() is Phase.FINISHED_ERROR
    assert op.stage_states == {"Prepare": "done", "Work": "failed"}
    assert "RuntimeError: disk full" in op.traceback
    stages = region(published.terminal(), "stages")
    assert text(stages) == "1 of 2 stages done Prepare (done) Work (failed)"
    assert stages.find(".//*[@aria-current]") is None


def test_a_cancel_inside_a_stage_marks_it_cancelled(op: Scripted, published: Published) -> None:
    after: list[str] = []

    def step(p: Progress) -> None:
        with p.stage("Work"):
            Scripted.objects.filter(pk=op.pk).update(cancel_requested=True)
            p.check_cancelled()
            after.append("kept running")

    op = run(op, step, lambda p: after.append("next step ran"))
    assert after == []
    assert op.get_state() is Phase.CANCELLED
    assert (op.cancelled, op.finished_successfully) == (True, False)
    assert op.finished_on is not None
    assert op.stage_states == {"Work": "cancelled"}
    terminal = published.terminal()
    assert text(region(terminal, "status")) == "Cancelled"
    assert text(region(terminal, "stages")) == (
        "0 of 2 stages done Prepare (pending) Work (cancelled)"
    )
    assert text(region(terminal, "result")) == "The operation was cancelled."


def test_a_result_inside_a_stage_closes_it_done(op: Scripted, published: Published) -> None:
    def step(p: Progress) -> None:
        with p.stage("Work"):
            p.result(n=1)

    op = run(op, step)
    assert op.get_state() is Phase.FINISHED_OK
    assert op.stage_states == {"Work": "done"}
    assert text(region(published.terminal(), "stages")) == (
        "1 of 2 stages done Prepare (pending) Work (done)"
    )


def test_an_error_inside_a_stage_leaves_it_failed(op: Scripted, published: Published) -> None:
    def step(p: Progress) -> None:
        with p.stage("Work"):
            p.error("bad input")

    op = run(op, step)
    terminal = published.terminal()
    assert text(region(terminal, "stages")) == "0 of 2 stages done Prepare (pending) Work (failed)"
    # What a later snapshot shows must agree with the terminal message.
    assert op.stage_states == {"Work": "failed"}
    assert op.version == int(region(terminal, "status").get("data-liveop-v"))


def test_a_stage_after_the_end_is_ignored(
    op: Scripted, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    def step(p: Progress) -> None:
        p.result(n=1)
        with p.stage("Work"):
            pass

    op = run(op, step)
    assert op.get_state() is Phase.FINISHED_OK
    assert op.stage_states == {}
    assert any("stage" in message for message in liveops_warnings(caplog))


# --- endings -------------------------------------------------------------------------


def test_result_stores_what_json_keeps(op: Scripted, published: Published) -> None:
    when = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    op = run(
        op,
        lambda p: p.result(
            {"day": datetime.date(2024, 5, 1), "when": when},
            amount=decimal.Decimal("1.50"),
            key=key,
            rows=[1, 2],
        ),
    )
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {
        "day": "2024-05-01",
        "when": "2024-05-01T12:30:00Z",
        "amount": "1.50",
        "key": str(key),
        "rows": [1, 2],
    }
    result = region(published.terminal(), "result")
    assert [text(dt) for dt in result.iter("dt")] == ["amount", "day", "key", "rows", "when"]
    assert "2024-05-01T12:30:00Z" in text(result)


def test_result_refuses_values_json_cannot_keep(op: Scripted, published: Published) -> None:
    raised: list[str] = []

    def step(p: Progress) -> None:
        try:
            p.result(handle=object())
        except TypeError as exc:
            raised.append(str(exc))
        p.result(ok=True)  # the refused call did not end the operation

    op = run(op, step)
    (message,) = raised
    assert message.startswith("p.result() takes JSON-serializable values:")
    assert "object" in message
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {"ok": True}


def test_error_shows_its_message(op: Scripted, published: Published) -> None:
    op = run(op, lambda p: p.error("Row 3 has no date."))
    assert op.get_state() is Phase.FINISHED_ERROR
    assert (op.error_message, op.traceback, op.result_context) == ("Row 3 has no date.", "", None)
    terminal = published.terminal()
    assert text(region(terminal, "status")) == "Failed"
    alert = region(terminal, "result").find(".//*[@role='alert']")
    assert text(alert) == "Error Row 3 has no date."


def test_a_huge_error_message_is_clipped(op: Scripted, published: Published) -> None:
    op = run(op, lambda p: p.error("x" * 1_000_000))
    assert len(op.error_message) == ERROR_MAX
    assert op.error_message.endswith("…")


def test_a_stage_name_longer_than_its_column_is_refused(
    op: Scripted, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Scripted, "stages", [])  # undeclared stages are then allowed
    op = run(op, lambda p: p.stage("s" * (STAGE_NAME_MAX + 1)).__enter__())
    assert op.get_state() is Phase.FINISHED_ERROR
    assert "Stage names are at most 200 characters" in op.traceback


def test_calls_after_the_result_are_ignored_with_a_warning(
    op: Scripted, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    def step(p: Progress) -> None:
        p.result(n=1)
        p.status("late status")
        p.percent(5)
        p.log("late line")
        list(p.track([1, 2], label="late track"))
        p.error("late error")
        assert p.finished

    op = run(op, step)
    assert op.get_state() is Phase.FINISHED_OK
    assert (op.result_context, op.error_message) == ({"n": 1}, "")
    terminal_text = text(published.terminal())
    assert "late" not in terminal_text
    assert "100%" in terminal_text
    ignored = [m for m in liveops_warnings(caplog) if "p.status() and later calls" in m]
    assert len(ignored) == 1


def test_a_failed_operation_cannot_turn_successful(op: Scripted, published: Published) -> None:
    op = run(op, lambda p: p.error("bad"), lambda p: p.result(n=1))
    assert op.get_state() is Phase.FINISHED_ERROR
    assert (op.error_message, op.result_context) == ("bad", None)
    assert text(region(published.terminal(), "status")) == "Failed"


def test_ending_with_result_logs_no_warning(
    op: Scripted, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    # The documented way to finish: p.result(), then return from run().
    op = run(op, lambda p: p.result(n=1))
    assert op.get_state() is Phase.FINISHED_OK
    assert liveops_warnings(caplog) == []


def test_returning_without_result_finishes_ok(op: Scripted, published: Published) -> None:
    op = run(op, lambda p: p.status("done here"))
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {}
    assert op.finished_on is not None
    terminal = published.terminal()
    assert text(region(terminal, "status")) == "Finished : done here"
    assert text(region(terminal, "result")) == "Result The operation finished successfully."
    bar = region(terminal, "progress").find(".//*[@role='progressbar']")
    assert bar.get("aria-valuenow") == "100"


def test_an_exception_fails_with_a_generic_message(op: Scripted, published: Published) -> None:
    def step(p: Progress) -> None:
        raise ValueError("secret detail /srv/data.csv")

    op = run(op, step)
    assert op.get_state() is Phase.FINISHED_ERROR
    assert op.error_message == ""
    assert "ValueError: secret detail /srv/data.csv" in op.traceback
    result = region(published.terminal(), "result")
    assert text(result) == "Error The operation failed. The error has been recorded."
    assert "secret" not in text(published.terminal())


def test_an_interrupt_is_recorded_and_propagates(op: Scripted, published: Published) -> None:
    def step(p: Progress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(op, step)
    op.refresh_from_db()
    assert op.get_state() is Phase.FINISHED_ERROR
    assert op.error_message == INTERRUPTED_MESSAGE
    assert op.interrupted
    assert "KeyboardInterrupt" in op.traceback


def test_check_cancelled_with_a_cancel_requested_cancels(
    op: Scripted, published: Published
) -> None:
    ran: list[str] = []

    def step(p: Progress) -> None:
        p.status("working")
        Scripted.objects.filter(pk=op.pk).update(cancel_requested=True)
        p.check_cancelled()
        ran.append("check passed")

    op = run(op, step, lambda p: ran.append("next step ran"))
    assert ran == []
    assert op.get_state() is Phase.CANCELLED
    assert text(region(published.terminal(), "status")) == "Cancelled : working"


def test_a_cancel_requested_before_the_start_runs_nothing(
    op: Scripted, published: Published
) -> None:
    ran: list[str] = []
    Scripted.objects.filter(pk=op.pk).update(cancel_requested=True)
    op = run(op, lambda p: ran.append("ran"))
    assert ran == []
    assert op.get_state() is Phase.CANCELLED


def test_a_second_execute_runs_nothing(op: Scripted, published: Published) -> None:
    ran: list[str] = []
    op = run(op, lambda p: ran.append("ran"), lambda p: p.result(n=1))
    published.terminal()
    finished_on, sent = op.finished_on, len(published.messages)
    op = run(op, lambda p: ran.append("ran again"), lambda p: p.error("overwritten"))
    assert ran == ["ran"]
    assert (op.get_state(), op.result_context, op.finished_on) == (
        Phase.FINISHED_OK,
        {"n": 1},
        finished_on,
    )
    assert len(published.messages) == sent
