"""``manage.py run_liveop``: create an operation from the command line and run it here."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from liveops._state import Phase
from liveops.management.commands.run_liveop import EXIT_CANCELLED, EXIT_FAILED
from liveops.progress import Progress
from tests.pg_workers import wait_for
from tests.test_liveness import ROOT, env_for_children
from tests.testapp.models import Counted, Endless, Pulsed, Scripted

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 15.0


class EveryKey(dict[Any, Any]):
    """``Scripted.SCRIPTS`` that gives every operation the same script (its pk is not known yet)."""

    def __init__(self, *steps: Callable[[Progress], None]) -> None:
        super().__init__()
        self.steps = list(steps)

    def get(self, key: Any, default: Any = None) -> Any:
        return self.steps


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import tqdm`` fail, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "tqdm", None)


def run(*args: str) -> str:
    out = StringIO()
    call_command("run_liveop", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def fails(*args: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        run(*args)
    return info.value


def script(monkeypatch: pytest.MonkeyPatch, *steps: Callable[[Progress], None]) -> None:
    monkeypatch.setattr(Scripted, "SCRIPTS", EveryKey(*steps))


# --- creating -------------------------------------------------------------------------


def test_creates_from_field_values_runs_and_prints_the_result(user: Any, plain: None) -> None:
    out = run("testapp.pulsed", "--steps=3", "--released=3", "--wait-seconds=5", "--owner=alice")
    op = Pulsed.objects.get()
    assert (op.steps, op.released, op.wait_seconds, op.owner_id) == (3, 3, 5.0, user.pk)
    assert op.get_state() is Phase.FINISHED_OK
    assert "steps: 3" in out.splitlines()
    assert f"pid: {op.result_context['pid']}" in out


def test_owner_may_come_as_a_separate_argument(user: Any, plain: None) -> None:
    run("testapp.counted", "--owner", "alice")
    assert Counted.objects.get().owner_id == user.pk


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--nope=1"], "Unknown field --nope: Pulsed has no field 'nope'"),
        (["--percent=5"], "Unknown field --percent"),  # bookkeeping, not settable
        (["--steps=many"], "Invalid --steps: “many” value must be an integer."),
        (["--steps=-1"], "--steps: Ensure this value is greater than or equal to 0."),
        (["--steps", "3"], "Unexpected argument '--steps': give field values as --name=value"),
        (["--wait_seconds=soon"], "Invalid --wait_seconds: “soon” value must be a float."),
    ],
)
def test_bad_fields_are_command_errors_naming_the_field(
    user: Any, args: list[str], expected: str
) -> None:
    error = fails("testapp.pulsed", *args, "--owner=alice")
    assert expected in str(error)
    assert Pulsed.objects.count() == 0


def test_unknown_field_lists_the_settable_ones(user: Any) -> None:
    message = str(fails("testapp.pulsed", "--nope=1", "--owner=alice"))
    assert "--steps, --released, --wait_seconds" in message
    assert "--language" in message


def test_a_missing_user_is_an_error_and_no_user_is_created(user: Any) -> None:
    users = get_user_model().objects.count()
    error = fails("testapp.pulsed", "--owner=nobody")
    assert "No user with username 'nobody'" in str(error)
    assert "does not create users" in str(error)
    assert get_user_model().objects.count() == users
    assert Pulsed.objects.count() == 0


def test_without_owner_a_model_that_needs_one_says_so(user: Any) -> None:
    users = get_user_model().objects.count()
    assert "needs an owner: name an existing user with --owner" in str(fails("testapp.pulsed"))
    assert get_user_model().objects.count() == users


def test_an_unknown_model_is_an_error() -> None:
    assert "No model 'testapp.nothing'" in str(fails("testapp.nothing"))
    assert "is not a LiveOperation model" in str(fails("testapp.countedrun"))


# --- ending ---------------------------------------------------------------------------


def test_an_exception_exits_1_with_its_message(
    user: Any, plain: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(p: Progress) -> None:
        raise ValueError("disk full")

    script(monkeypatch, boom)
    error = fails("testapp.scripted", "--owner=alice")
    assert error.returncode == EXIT_FAILED == 1
    assert "failed: ValueError: disk full" in str(error)
    assert Scripted.objects.get().get_state() is Phase.FINISHED_ERROR


def test_p_error_exits_1_with_its_message(
    user: Any, plain: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    script(monkeypatch, lambda p: p.error("quota exceeded"))
    error = fails("testapp.scripted", "--owner=alice")
    assert (error.returncode, str(error).endswith("failed: quota exceeded")) == (1, True)


def test_a_cancel_requested_before_the_end_exits_130(
    user: Any, plain: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cancel_myself(p: Progress) -> None:
        Scripted.objects.update(cancel_requested=True)
        p.check_cancelled()

    script(monkeypatch, cancel_myself)
    error = fails("testapp.scripted", "--owner=alice")
    assert (error.returncode, EXIT_CANCELLED) == (130, 130)
    assert "was cancelled" in str(error)
    assert Scripted.objects.get().get_state() is Phase.CANCELLED


# --- showing --------------------------------------------------------------------------


def test_plain_lines_status_every_ten_percent_and_a_bounded_log(
    user: Any, plain: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def work(p: Progress) -> None:
        p.status("Copying")
        for i in range(101):
            p.percent(i)
            time.sleep(0.005)
        p.status("Flooding the log", "warning")
        for i in range(2000):
            p.log(f"line {i}")
        p.result({"copied": 101, "where": {"disk": "b"}})

    script(monkeypatch, work)
    lines = run("testapp.scripted", "--owner=alice").splitlines()
    assert "Copying" in lines
    assert "warning: Flooding the log" in lines
    percents = [line for line in lines if line.endswith("%")]
    assert 2 <= len(percents) <= 11
    assert percents[-1] == "100%"
    assert any(line.startswith("| … ") and "not shown" in line for line in lines)
    assert len(lines) < 60  # 2,000 log lines: no flood
    assert lines[-2:] == ["copied: 101", 'where: {"disk": "b"}']


def test_plain_lines_show_a_tracked_count(
    user: Any, plain: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def work(p: Progress) -> None:
        for _ in p.track(range(40), label="Rows", unit="row"):
            time.sleep(0.005)

    script(monkeypatch, work)
    lines = run("testapp.scripted", "--owner=alice").splitlines()
    assert "Rows: 40/40 rows (100%)" in lines


def test_plain_lines_word_the_unit_as_the_page_does(
    user: Any, plain: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def work(p: Progress) -> None:
        for _ in p.track(iter(range(2)), unit="file"):  # unsized: a count, no total
            pass

    script(monkeypatch, work)
    lines = run("testapp.scripted", "--owner=alice").splitlines()
    assert "2 files" in lines


class FakeTqdm:
    """Records what a tqdm bar was asked to show."""

    bars: list[FakeTqdm] = []
    written: list[str] = []

    def __init__(self, total: float | None = None, **kwargs: Any) -> None:
        self.total, self.kwargs, self.n, self.desc = total, kwargs, 0.0, ""
        self.shown: list[tuple[str, float]] = []
        self.closed = False
        self.bars.append(self)

    def set_description_str(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        self.shown.append((self.desc, self.n))

    def close(self) -> None:
        self.closed = True

    @classmethod
    def write(cls, text: str) -> None:
        cls.written.append(text)


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> type[FakeTqdm]:
    monkeypatch.setattr(FakeTqdm, "bars", [])
    monkeypatch.setattr(FakeTqdm, "written", [])
    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    return FakeTqdm


def test_with_tqdm_a_percent_bar_then_a_count_bar(
    user: Any, fake_tqdm: type[FakeTqdm], monkeypatch: pytest.MonkeyPatch
) -> None:
    def work(p: Progress) -> None:
        p.status("Warming up")
        for i in range(0, 101, 10):
            p.percent(i)
            time.sleep(0.03)
        p.log("half way")
        time.sleep(0.2)
        for _ in p.track(range(5), unit="file"):
            time.sleep(0.05)
        p.result(files=5)

    script(monkeypatch, work)
    out = run("testapp.scripted", "--owner=alice")
    percent_bar, count_bar = fake_tqdm.bars
    assert percent_bar.total == 100
    assert "percentage" in percent_bar.kwargs["bar_format"]
    assert ("Warming up", 100.0) in percent_bar.shown
    assert (count_bar.total, count_bar.kwargs["unit"], count_bar.n) == (5, " file", 5)
    assert (percent_bar.closed, count_bar.closed) == (True, True)
    assert "| half way" in fake_tqdm.written
    assert "files: 5" in out.splitlines()


def test_plain_option_ignores_tqdm(user: Any, fake_tqdm: type[FakeTqdm]) -> None:
    out = run("testapp.pulsed", "--released=2", "--owner=alice", "--plain")
    assert fake_tqdm.bars == []
    assert "| step 1" in out.splitlines()


# --- Ctrl-C, for real -----------------------------------------------------------------


def start_command(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "django", "run_liveop", *args],
        cwd=ROOT,
        env=env_for_children(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def started(model: Any) -> Any:
    return wait_for(
        lambda: model.objects.filter(started_on__isnull=False).first(), DEADLINE, "it started"
    )


def test_ctrl_c_cancels_the_operation_and_exits_130(user: Any) -> None:
    process = start_command("testapp.endless", "--owner", "alice")
    try:
        op = started(Endless)
        time.sleep(0.3)  # well inside the polling loop
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=DEADLINE)
    finally:
        process.kill()
    assert process.returncode == EXIT_CANCELLED, err
    assert "Cancelling" in out
    assert "was cancelled" in err
    op.refresh_from_db()
    assert op.get_state() is Phase.CANCELLED
    assert op.stage_states == {"Work": "cancelled"}


def test_a_second_ctrl_c_exits_at_once_and_the_run_ends_interrupted(user: Any) -> None:
    # Pulsed waits for a release it never gets, and never checks for a cancel.
    process = start_command("testapp.pulsed", "--wait-seconds=60", "--owner=alice")
    try:
        op = started(Pulsed)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        wait_for(lambda: Pulsed.objects.filter(cancel_requested=True).exists(), DEADLINE, "cancel")
        begun = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=DEADLINE)
    finally:
        process.kill()
    assert time.monotonic() - begun < 5
    assert process.returncode == EXIT_CANCELLED, err
    assert "Stopped waiting" in err
    op.refresh_from_db()
    assert (op.get_state(), op.interrupted) == (Phase.FINISHED_ERROR, True)


def test_sigterm_exits_and_the_run_ends_interrupted(user: Any) -> None:
    process = start_command("testapp.endless", "--owner=alice")
    try:
        op = started(Endless)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=DEADLINE)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    op.refresh_from_db()
    assert (op.get_state(), op.interrupted) == (Phase.FINISHED_ERROR, True)
