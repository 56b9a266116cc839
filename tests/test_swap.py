"""Custom regions: ``extra_regions`` on the model, ``p.swap()`` in ``run()``."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core import checks
from django.test.utils import isolate_apps

from liveops import lifecycle
from liveops._checks import check_operation_models
from liveops._fragments import render_container, render_regions
from liveops._state import EXTRA_HTML_MAX, Phase
from liveops.models import LiveOperation
from liveops.progress import Progress
from liveops.testing import LiveRun, RecordingProgress
from tests.testapp.models import Swapping

CHART = '<svg role="img" aria-label="Rows per minute"><rect width="40" height="10"/></svg>'


@pytest.fixture
def swapping(user: Any) -> Any:
    made: list[Any] = []

    def make(*steps: Any) -> Swapping:
        op = Swapping.objects.create(owner=user)
        Swapping.SCRIPTS[op.pk] = list(steps)
        made.append(op)
        return op

    yield make
    for op in made:
        Swapping.SCRIPTS.pop(op.pk, None)


@pytest.mark.django_db(transaction=True)
def test_swapped_html_goes_out_as_it_is_and_ends_in_the_terminal_frame(
    swapping: Any, liveops_run: LiveRun
) -> None:
    record = liveops_run(swapping(lambda p: p.swap("chart", CHART), lambda p: p.result(n=1)))
    chart = record.region("chart")
    assert chart.startswith(f'<div id="liveop-{record.op.pk}-chart" class="liveops-extra')
    assert CHART in chart  # trusted: not escaped
    assert "data-liveop-terminal" in chart
    assert record.op.extra_html == {"chart": CHART}
    assert f'id="liveop-{record.op.pk}-summary"' in record.terminal_frame  # empty, but there


@pytest.mark.django_db(transaction=True)
def test_each_swap_is_stored_at_once_for_pages_opened_later(swapping: Any, user: Any) -> None:
    from liveops._execution import execute

    seen: dict[str, Any] = {}
    gate = threading.Event()

    def look(p: Progress) -> None:
        stored = Swapping.objects.get(pk=op.pk)
        seen["stored"] = stored.extra_html
        seen["snapshot"] = render_regions(stored, stored.to_view())
        gate.set()

    op = swapping(lambda p: p.swap("summary", "<b>12</b> rows so far"), look)
    execute(op.live_label(), op.pk)
    assert gate.is_set()
    assert seen["stored"] == {"summary": "<b>12</b> rows so far"}
    assert "<b>12</b> rows so far</div>" in seen["snapshot"]


@pytest.mark.django_db(transaction=True)
def test_a_template_is_rendered_with_op_and_context_and_escapes(
    swapping: Any, liveops_run: LiveRun
) -> None:
    title = "<script>alert(1)</script> Ünïcödé"
    record = liveops_run(
        swapping(lambda p: p.swap("chart", template="testapp/chart.html", context={"title": title}))
    )
    chart = record.region("chart")
    assert "<script>" not in chart
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Ünïcödé" in chart
    assert f"for {record.op.pk}" in chart


@pytest.mark.django_db(transaction=True)
def test_the_page_holds_the_regions_after_the_stages(swapping: Any, user: Any) -> None:
    op = swapping()
    Swapping.objects.filter(pk=op.pk).update(extra_html={"chart": CHART, "gone": "<p>old</p>"})
    op.refresh_from_db()
    html = render_container(op, op.to_view(), staff=False, ws_path="/ws/", log_max=200)
    stages, chart, summary, log = (
        html.index(f'id="liveop-{op.pk}-{name}"') for name in ("stages", "chart", "summary", "log")
    )
    assert stages < chart < summary < log
    assert CHART in html
    assert "old" not in html  # a name no longer declared is not shown


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p: p.swap("nope", "<p>x</p>"), ValueError, r"Swapping\.extra_regions"),
        (lambda p: p.swap("chart"), TypeError, "either html or template"),
        (lambda p: p.swap("chart", "<p/>", template="x.html"), TypeError, "not both"),
        (lambda p: p.swap("chart", "x" * (EXTRA_HTML_MAX + 1)), ValueError, "at most 100,000"),
    ],
)
def test_mistakes_raise_with_the_fix(call: Any, error: type[Exception], match: str) -> None:
    p = RecordingProgress(Swapping())
    with pytest.raises(error, match=match):
        call(p)
    assert p.extra_html == {}


def test_recording_progress_keeps_what_was_swapped() -> None:
    p = RecordingProgress(Swapping())
    p.swap("chart", CHART)
    p.swap("chart", "<p>newer</p>")
    p.result()
    p.swap("summary", "<p>after the end</p>")  # ignored, as the real one does
    assert p.extra_html == {"chart": "<p>newer</p>"}
    assert p.phase is Phase.FINISHED_OK


@pytest.mark.django_db(transaction=True)
def test_running_it_again_empties_the_regions(
    swapping: Any, liveops_run: LiveRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = liveops_run(swapping(lambda p: p.swap("chart", CHART)))
    monkeypatch.setattr("liveops.runners.dispatch", lambda label, pk: None)
    assert lifecycle.request_retry(record.op)
    record.op.refresh_from_db()
    assert record.op.extra_html == {}
    assert CHART not in render_regions(record.op, record.op.to_view())


def test_the_system_check_names_bad_region_names() -> None:
    with isolate_apps("tests.testapp") as registry:

        class BadRegions(LiveOperation):
            extra_regions = ["chart", "Chart!", "log", "chart"]

            class Meta:
                app_label = "testapp"

        class GoodRegions(LiveOperation):
            extra_regions = ["chart", "rows-per-minute", "top_10"]

            class Meta:
                app_label = "testapp"

        found = check_operation_models([registry.get_app_config("testapp")])
    assert all(isinstance(e, checks.Error) and e.obj is BadRegions for e in found)
    assert {e.id for e in found} == {"liveops.E015"}
    assert sorted(e.msg for e in found) == sorted(
        [
            "BadRegions.extra_regions: 'Chart!' is not a region name.",
            "BadRegions.extra_regions: 'log' is a built-in region.",
            "BadRegions.extra_regions: 'chart' is listed twice.",
            "BadRegions.extra_regions: 'chart' is listed twice.",
        ]
    )
    assert "lower-case letters" in found[0].hint


def test_the_system_check_names_a_persist_progress_that_is_not_a_bool() -> None:
    with isolate_apps("tests.testapp") as registry:

        class Stores(LiveOperation):
            persist_progress = True

            class Meta:
                app_label = "testapp"

        class Follows(LiveOperation):
            persist_progress = None

            class Meta:
                app_label = "testapp"

        class Unsure(LiveOperation):
            persist_progress = 1  # type: ignore[assignment]

            class Meta:
                app_label = "testapp"

        (found,) = check_operation_models([registry.get_app_config("testapp")])
    assert (found.id, found.obj) == ("liveops.E021", Unsure)
    assert found.msg == "Unsure.persist_progress is 1; it must be None, True or False."
    assert "LIVEOPS['PERSIST_PROGRESS']" in found.hint


def test_the_project_s_own_models_pass_the_check() -> None:
    assert check_operation_models() == []
