"""liveops.testing: RecordingProgress and the liveops_run fixture, as a user would use them."""

from __future__ import annotations

import datetime
import inspect
import logging
from typing import Any

import pytest

from liveops._fragments import render_update
from liveops._state import ERROR_MAX, STAGE_NAME_MAX, Phase, StageState, StateView
from liveops.exceptions import OperationCancelled
from liveops.progress import Progress
from liveops.testing import Call, LiveRun, LiveRunRecord, RecordingProgress
from tests.testapp.models import Scripted

# The liveops_run fixture comes from `pytest_plugins = ["liveops.testing"]` in conftest.py.


# --- RecordingProgress ---------------------------------------------------------------


def full_run(p: Progress) -> None:
    """A run() that uses every method; its second stage fails, and it recovers."""
    p.status("Preparing")
    with p.stage("Prepare"):
        p.percent(10)
        p.log("prepared")
    try:
        with p.stage("Work"):
            for row in p.track(["a", "b", "c"], label="Rows", unit="row"):
                p.log(f"row {row}")
            p.check_cancelled()
            raise RuntimeError("disk full")
    except RuntimeError:
        p.status("Work failed, reporting", level="warning")
    p.result({"rows": 3}, when=datetime.date(2024, 5, 1))


def test_recording_progress_records_every_call_in_order() -> None:
    p = RecordingProgress(stages=["Prepare", "Work"])
    full_run(p)
    assert [call.name for call in p.calls] == [
        "status",
        "stage",
        "percent",
        "log",
        "stage",
        "track",
        "log",
        "log",
        "log",
        "check_cancelled",  # the one run() made; track()'s own checks are not calls
        "status",
        "result",
    ]
    assert p.calls[0] == ("status", ("Preparing",), {"level": "info"})
    assert p.calls[-1] == Call("result", ({"rows": 3},), {"when": datetime.date(2024, 5, 1)})
    assert p.cancel_checks == 4  # one after each tracked item, one by run()


def test_recording_progress_keeps_the_resulting_state() -> None:
    p = RecordingProgress(stages=["Prepare", "Work", "Report"])
    full_run(p)
    assert p.finished
    assert p.phase is Phase.FINISHED_OK
    assert (p.status_text, p.status_level) == ("Work failed, reporting", "warning")
    assert p.log_lines == ["prepared", "row a", "row b", "row c"]
    assert p.stages == {"Prepare": "done", "Work": "failed", "Report": "pending"}
    assert p.stages["Work"] is StageState.FAILED
    assert (p.done, p.total, p.percent_value) == (3, 3, 100.0)
    # As the result template gets it: through JSON, so the date is a string.
    assert p.result_context == {"rows": 3, "when": "2024-05-01"}
    assert p.error_message == ""


def test_stage_states_while_running_and_on_error() -> None:
    p = RecordingProgress()
    with p.stage("Load"):
        assert p.stages == {"Load": StageState.ACTIVE}
        p.error("no input file")
    assert p.stages == {"Load": "failed"}  # an open stage ends with the operation
    assert (p.phase, p.error_message, p.result_context) == (
        Phase.FINISHED_ERROR,
        "no input file",
        None,
    )


def test_calls_after_the_end_are_recorded_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    p = RecordingProgress()
    p.result(n=1)
    with caplog.at_level(logging.WARNING, logger="liveops"):
        p.status("too late")
        p.error("too late")
    assert [call.name for call in p.calls] == ["result", "status", "error"]
    assert p.status_text == ""
    assert (p.phase, p.result_context) == (Phase.FINISHED_OK, {"n": 1})
    assert "finished already" in caplog.text


def test_unsized_track_counts_without_a_total() -> None:
    p = RecordingProgress()
    assert list(p.track(iter(range(5)))) == [0, 1, 2, 3, 4]
    assert (p.done, p.total, p.percent_value) == (5, None, None)


@pytest.mark.parametrize("cancel_after", [0, 2])
def test_cancel_after_raises_at_the_next_check(cancel_after: int) -> None:
    p = RecordingProgress(cancel_after=cancel_after)
    for _ in range(cancel_after):
        p.check_cancelled()
    with pytest.raises(OperationCancelled):
        p.check_cancelled()
    with pytest.raises(OperationCancelled):
        p.check_cancelled()  # and stays cancelled


def test_cancel_inside_track_marks_the_stage_cancelled() -> None:
    p = RecordingProgress(cancel_after=2)
    seen: list[int] = []

    def run() -> None:
        with p.stage("Work"):
            for item in p.track(range(10)):
                seen.append(item)

    with pytest.raises(OperationCancelled):
        run()
    assert seen == [0, 1, 2]
    assert p.stages == {"Work": "cancelled"}


def test_cancel_makes_the_next_check_raise() -> None:
    p = RecordingProgress()
    for _ in range(100):
        p.check_cancelled()  # never, by default
    p.cancel()
    with pytest.raises(OperationCancelled):
        p.check_cancelled()


def test_invalid_arguments_raise_as_progress_does() -> None:
    p = RecordingProgress(stages=["Prepare"])
    with pytest.raises(ValueError, match="percent must be a number, not nan"):
        p.percent(float("nan"))
    with pytest.raises(ValueError, match="'fatal'"):
        p.status("boom", level="fatal")
    with pytest.raises(ValueError, match=r"Unknown stage 'Other'.*\['Prepare'\]"), p.stage("Other"):
        pass
    with pytest.raises(ValueError, match="at most"), p.stage("x" * (STAGE_NAME_MAX + 1)):
        pass
    with pytest.raises(TypeError, match="JSON-serializable"):
        p.result(thing=object())
    p.percent(150)
    assert p.percent_value == 100.0
    p.percent(-3)
    assert p.percent_value == 0.0
    assert not p.finished


def test_long_texts_are_clipped_as_on_the_page() -> None:
    p = RecordingProgress()
    p.error("e" * (ERROR_MAX + 50))
    assert len(p.error_message) == ERROR_MAX


def test_stages_come_from_the_operation() -> None:
    op = Scripted()  # unsaved: RecordingProgress needs no database
    p = RecordingProgress(op)
    assert p.stages == {"Prepare": "pending", "Work": "pending"}
    with pytest.raises(ValueError, match=r"Scripted\.stages"), p.stage("Elsewhere"):
        pass


def test_public_methods_have_progress_signatures() -> None:
    public = [name for name in vars(Progress) if not name.startswith("_")]
    assert set(public) <= set(dir(RecordingProgress))
    for name in public:
        if callable(getattr(Progress, name)):
            assert inspect.signature(getattr(RecordingProgress, name)) == inspect.signature(
                getattr(Progress, name)
            ), name


# --- the liveops_run fixture ---------------------------------------------------------


@pytest.fixture
def scripted(user: Any) -> Any:
    def make(*steps: Any) -> Scripted:
        op = Scripted.objects.create(owner=user)
        Scripted.SCRIPTS[op.pk] = list(steps)
        made.append(op)
        return op

    made: list[Scripted] = []
    yield make
    for op in made:
        Scripted.SCRIPTS.pop(op.pk, None)


def succeed(p: Progress) -> None:
    with p.stage("Prepare"):
        p.status("Loading")
        p.log("first line")
    with p.stage("Work"):
        for _ in p.track(range(4), label="Rows"):
            p.log("a row")
    p.result(rows=4)


def fail(p: Progress) -> None:
    with p.stage("Prepare"):
        p.log("about to fail")
        raise RuntimeError("secret internal detail")


@pytest.mark.django_db(transaction=True)
def test_liveops_run_shows_a_successful_run(liveops_run: LiveRun, scripted: Any) -> None:
    record = liveops_run(scripted(succeed))
    assert record.phase is Phase.FINISHED_OK
    assert record.op.result_context == {"rows": 4}
    assert len(record.frames) == len(record.messages) >= 1
    assert record.terminal_frame == record.frames[-1]
    assert f'id="liveop-{record.op.pk}-result"' in record.terminal_frame
    assert record.text("status") == "Finished : Loading"
    assert record.texts("log") == ["first line", "a row", "a row", "a row", "a row"]
    assert record.texts("result") == ["Result", "rows", "4"]
    assert "(done)" in record.text("stages")
    assert "data-liveop-terminal" in record.region("progress")
    assert record.region("log").startswith(f'<ol id="liveop-{record.op.pk}-log"')


@pytest.mark.django_db(transaction=True)
def test_liveops_run_shows_a_failing_run(liveops_run: LiveRun, scripted: Any) -> None:
    record = liveops_run(scripted(fail))
    assert record.phase is Phase.FINISHED_ERROR
    assert record.terminal_frame is not None
    assert record.op.stage_states == {"Prepare": "failed"}
    assert "Failed" in record.text("status")
    assert record.texts("log") == ["about to fail"]
    # Viewers get the generic message; the traceback stays with staff and the database.
    assert "secret internal detail" not in record.text("result")
    assert "Error" in record.texts("result")
    assert "Prepare (failed)" in record.text("stages")
    assert "secret internal detail" in record.op.traceback


@pytest.mark.django_db
def test_liveops_run_works_inside_the_test_transaction(liveops_run: LiveRun, scripted: Any) -> None:
    # Plain django_db: the run's end is published by an on-commit callback that
    # the fixture runs itself.
    record = liveops_run(scripted(lambda p: p.result(n=1)))
    assert record.phase is Phase.FINISHED_OK
    assert record.terminal_frame is not None
    assert record.texts("result") == ["Result", "n", "1"]


@pytest.mark.django_db(transaction=True)
def test_liveops_run_records_only_its_operation(liveops_run: LiveRun, scripted: Any) -> None:
    first = liveops_run(scripted(lambda p: p.log("one")))
    second = liveops_run(scripted(lambda p: p.log("two")))
    assert first.texts("log") == ["one"]
    assert second.texts("log") == ["two"]
    again = liveops_run(first.op)  # claimed already: nothing runs, nothing is sent
    assert (again.phase, again.messages, again.terminal_frame) == (Phase.FINISHED_OK, [], None)
    with pytest.raises(KeyError):
        again.region("status")


def test_region_adds_appended_log_lines_in_order() -> None:
    # Before the end, log lines go out as appends to the log region.
    op = Scripted()
    lines: tuple[tuple[int, str], ...] = ()
    messages = []
    for seq, line in enumerate(["one", "two & three", "four"], start=1):
        lines += ((seq, line),)
        view = StateView(version=seq, phase=Phase.STARTED, log_tail=lines)
        update = render_update(op, view, {"log", "status"}, group="g", new_log=lines[-1:])
        messages.append(update.to_message())
    record = LiveRunRecord(op=op, phase=Phase.STARTED, messages=messages)
    assert record.terminal_frame is None
    assert record.texts("log") == ["one", "two & three", "four"]
    assert record.region("log").count("<li ") == 3
    assert record.text("status") == "In progress"


@pytest.mark.django_db(transaction=True)
def test_liveops_run_refuses_an_unsaved_operation(liveops_run: LiveRun, user: Any) -> None:
    with pytest.raises(ValueError, match="Save"):
        liveops_run(Scripted(owner=user))
