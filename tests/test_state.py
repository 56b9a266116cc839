"""LiveState: versions, dirty regions, the log tail, the held terminal state, clipping, locking."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from liveops._state import (
    ALL_REGIONS,
    LOG_LINE_MAX,
    STATUS_MAX,
    LiveState,
    Phase,
    StageState,
    StateView,
)

CHANGES: list[tuple[str, Callable[[LiveState], object]]] = [
    ("status", lambda s: s.set_status("Reading", "info")),
    ("progress", lambda s: s.set_percent(12.5)),
    ("progress", lambda s: s.set_count(3, 10, "Rows", "row")),
    ("log", lambda s: s.add_log(["a line"])),
    ("stages", lambda s: s.set_stages((("Prepare", StageState.ACTIVE),))),
]


def test_every_change_bumps_the_version_by_one() -> None:
    state = LiveState()
    versions = [state.version]
    state.start()
    versions.append(state.version)
    for _region, change in CHANGES * 2:
        change(state)
        versions.append(state.version)
    state.finish(Phase.FINISHED_OK, result_context={})
    versions.append(state.version)
    assert versions == list(range(versions[0], versions[0] + len(versions)))


@pytest.mark.parametrize(("region", "change"), CHANGES)
def test_a_change_dirties_its_region_once(
    region: str, change: Callable[[LiveState], object]
) -> None:
    state = LiveState()
    assert state.take_changes() is None
    assert change(state) is True  # turned dirty: the caller notifies the publisher
    assert change(state) is False  # already dirty: no second notification
    assert state.is_dirty
    changes = state.take_changes()
    assert changes is not None
    assert changes.regions == {region}
    assert changes.view.version == state.version
    assert not state.is_dirty
    assert state.take_changes() is None
    assert change(state) is True


def test_take_changes_collects_every_region_changed_since_the_last_call() -> None:
    state = LiveState()
    state.set_status("one", "info")
    state.set_percent(50)
    state.set_status("two", "warning")
    changes = state.take_changes()
    assert changes is not None
    assert changes.regions == {"status", "progress"}
    assert (changes.view.status_text, changes.view.status_level) == ("two", "warning")
    assert changes.view.percent == 50


def test_start_dirties_status_and_progress() -> None:
    state = LiveState()
    state.start()
    changes = state.take_changes()
    assert changes is not None
    assert changes.view.phase is Phase.STARTED
    assert changes.regions == {"status", "progress"}


def test_log_lines_get_consecutive_sequence_numbers() -> None:
    state = LiveState()
    state.add_log(["a", "b"])
    first = state.take_changes()
    state.add_log(["c"])
    second = state.take_changes()
    assert first is not None
    assert second is not None
    assert first.new_log == ((1, "a"), (2, "b"))
    assert second.new_log == ((3, "c"),)
    assert state.log_seq == 3
    assert state.current().log_tail == ((1, "a"), (2, "b"), (3, "c"))


def test_the_log_keeps_a_bounded_tail() -> None:
    state = LiveState(log_tail_size=5)
    for n in range(1, 1001):
        state.add_log([f"line {n}"])
    tail = tuple((n, f"line {n}") for n in range(996, 1001))
    assert state.current().log_tail == tail
    changes = state.take_changes()
    assert changes is not None
    # New lines waiting for a flush are bounded too, and end with the tail.
    assert len(changes.new_log) <= 2 * 5
    assert changes.new_log[-5:] == tail
    assert changes.view.log_tail == tail


def test_a_state_continues_the_log_of_a_stored_view() -> None:
    state = LiveState(StateView(version=9, log_tail=((6, "x"), (7, "y"))), 3)
    state.add_log(["z", "w"])
    assert state.log_seq == 9
    assert state.current().log_tail == ((7, "y"), (8, "z"), (9, "w"))
    assert state.version == 10


def test_the_terminal_state_is_held_until_release() -> None:
    state = LiveState()
    state.start()
    state.take_changes()
    state.set_percent(40)
    view = state.finish(Phase.FINISHED_OK, result_context={"n": 1})
    assert view.phase is Phase.FINISHED_OK
    assert view.result_context == {"n": 1}
    assert view.percent == 100.0  # no tracked total: finished means all of it
    assert state.take_changes() is None
    assert not state.is_dirty
    state.release()
    assert state.is_dirty
    changes = state.take_changes()
    assert changes is not None
    assert changes.regions == set(ALL_REGIONS)
    assert changes.view == state.current()
    assert changes.view.phase.is_terminal
    assert state.take_changes() is None


def test_finish_keeps_a_tracked_count_and_stores_the_stages_and_error() -> None:
    state = LiveState()
    state.set_count(3, 10, "Rows", "row")
    stages = (("Prepare", StageState.DONE), ("Work", StageState.FAILED))
    view = state.finish(
        Phase.FINISHED_ERROR, error_message="bad row", traceback="Traceback…", stages=stages
    )
    assert (view.done, view.total, view.percent) == (3, 10, 30.0)
    assert view.stages == stages
    assert (view.error_message, view.traceback) == ("bad row", "Traceback…")


def test_a_count_without_total_has_no_percent() -> None:
    state = LiveState()
    state.set_count(7, None, "Files", "file")
    assert (state.current().done, state.current().total, state.current().percent) == (7, None, None)
    state.set_count(12, 10, "Files", "file")
    assert state.current().percent == 100.0


def test_long_status_and_log_lines_are_clipped() -> None:
    state = LiveState()
    state.set_status("s" * (STATUS_MAX * 50), "info")
    state.add_log(["l" * (LOG_LINE_MAX + 1), "k" * LOG_LINE_MAX])
    status = state.current().status_text
    (_, clipped), (_, kept) = state.current().log_tail
    assert len(status) == STATUS_MAX
    assert status == "s" * (STATUS_MAX - 1) + "…"
    assert len(clipped) == LOG_LINE_MAX
    assert clipped.endswith("l…")
    assert kept == "k" * LOG_LINE_MAX


def test_log_lines_become_text() -> None:
    state = LiveState()
    state.add_log([42, None])
    assert state.current().log_tail == ((1, "42"), (2, "None"))


class YieldingLine:
    """A log line whose str() lets other threads run, right inside add_log()."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        time.sleep(1e-6)  # not a wait for anything: a forced thread switch mid-update
        return self.text


def test_concurrent_changes_are_all_counted_in_order() -> None:
    per_thread = 3_000
    state = LiveState(log_tail_size=3 * per_thread)  # keep every line, to check them all
    start = threading.Barrier(4)
    writers_done = threading.Event()
    taken: list[int] = []

    def logger(name: str) -> None:
        start.wait()
        for n in range(per_thread):
            state.add_log([YieldingLine(f"{name} {n}")])

    def percenter() -> None:
        start.wait()
        for n in range(per_thread):
            state.set_percent(n % 100)

    def flusher() -> None:
        start.wait()
        while not writers_done.is_set() or state.is_dirty:
            changes = state.take_changes()
            if changes is not None:
                taken.extend(seq for seq, _ in changes.new_log)

    writers = [
        threading.Thread(target=logger, args=("a",)),
        threading.Thread(target=logger, args=("b",)),
        threading.Thread(target=percenter),
    ]
    reader = threading.Thread(target=flusher)
    for thread in [*writers, reader]:
        thread.start()
    for thread in writers:
        thread.join(60)
    writers_done.set()
    reader.join(60)
    assert not reader.is_alive()
    assert state.version == 3 * per_thread
    assert state.log_seq == 2 * per_thread
    log = state.current().log_tail
    assert [seq for seq, _ in log] == list(range(1, 2 * per_thread + 1))
    assert sorted(line for _, line in log) == sorted(
        f"{name} {n}" for name in "ab" for n in range(per_thread)
    )
    # The flusher saw every line once, in order.
    assert taken == list(range(1, 2 * per_thread + 1))
