"""Upgrading from django-liveops 0.4: its tests of ``run()`` with ``MockProgress`` keep passing.

The tests below are written as a 0.4 project wrote them (its attribute names, its
``cancel_after``), against the deprecated alias.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from liveops._state import Phase
from liveops.exceptions import OperationCancelled
from liveops.progress import Progress
from liveops.testing import RecordingProgress
from tests.testapp.models import Scripted


def import_rows(p: Progress) -> None:
    """A run() body as a 0.4 project wrote it."""
    p.status("Reading")
    with p.stage("Prepare"):
        p.log("opened rows.csv")
    with p.stage("Work"):
        for row in p.track(["a", "b", "c", "d"]):
            p.check_cancelled()
            p.log(f"row {row}")
    p.result({"total": 4}, source="rows.csv")


def mock_progress() -> Any:
    with pytest.deprecated_call(match=r"MockProgress is deprecated; use .*RecordingProgress"):
        from liveops.testing import MockProgress
    return MockProgress


def test_importing_the_0_4_name_warns_and_gives_a_recording_progress() -> None:
    mock = mock_progress()
    assert issubclass(mock, RecordingProgress)
    with pytest.deprecated_call():
        assert importlib.import_module("liveops.testing").MockProgress is mock
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        importlib.import_module("liveops.testing").Nothing  # noqa: B018


@pytest.mark.django_db
def test_a_0_4_unit_test_of_run_passes_on_the_alias(user: Any) -> None:
    op = Scripted.objects.create(owner=user)
    Scripted.SCRIPTS[op.pk] = [import_rows]
    try:
        p = mock_progress()(op)
        op.run(p)
    finally:
        del Scripted.SCRIPTS[op.pk]

    assert p.statuses == [("Reading", "info")]
    assert p.logs == ["opened rows.csv", "row a", "row b", "row c", "row d"]
    assert p.percents == [25, 50, 75, 100]  # track() reports a percent after each item
    assert p.stages_entered == ["Prepare", "Work"]
    assert p.result_context == {"total": 4, "source": "rows.csv"}
    assert p.error_message is None
    assert p.chained == []
    # 0.4's fake wrote the end on the operation, and saved it.
    assert op.finished_successfully is True
    op.refresh_from_db()
    assert (op.get_state(), op.result_context) == (
        Phase.FINISHED_OK,
        {"total": 4, "source": "rows.csv"},
    )


def test_error_is_recorded_and_written_on_an_unsaved_operation() -> None:
    op = Scripted()
    p = mock_progress()(op)
    p.percent(30)
    p.percent(60.7)
    p.error("no such file")
    p.error("ignored: it ended already")
    assert p.percents == [30, 60]
    assert p.error_message == "no such file"
    assert p.result_context is None
    assert (op.finished_successfully, op.error_message) == (False, "no such file")
    assert op.get_state() is Phase.FINISHED_ERROR
    assert op._state.adding  # nothing saved


def test_cancel_after_raises_out_of_run_as_in_0_4() -> None:
    p = mock_progress()(cancel_after=2)
    p.check_cancelled()
    p.check_cancelled()
    with pytest.raises(OperationCancelled):
        p.check_cancelled()
    assert p.error_message is None


def test_percents_of_a_track_with_a_total_and_of_an_unsized_one() -> None:
    p = mock_progress()()
    assert list(p.track(iter(range(3)), total=3)) == [0, 1, 2]
    assert list(p.track(iter(range(3)))) == [0, 1, 2]  # no total known: a count, no percents
    assert p.percents == [33, 66, 100]


def test_chain_to_is_recorded() -> None:
    p = mock_progress()()
    nxt = Scripted()
    p.chain_to(nxt)
    assert p.chained == [nxt]
    assert p.next_op is nxt
