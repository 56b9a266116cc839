"""The renderer: region elements, accessible progress, template overrides, ticks that add
up to the snapshot, and hostile text that stays text."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree
from lxml.html import HtmlElement

from liveops._fragments import region_id, render_regions
from liveops._state import (
    ALL_REGIONS,
    LOG_LINE_MAX,
    STATUS_MAX,
    LiveState,
    Phase,
    StageState,
    StateView,
)
from liveops._updates import frame
from tests.dom import Page, parse
from tests.testapp.models import Gated, Scripted

TAIL = 7
TIMES = "\N{MULTIPLICATION SIGN}"  # the count reads "3 TIMES row done"


@pytest.fixture
def op() -> Scripted:
    return Scripted(owner_id=1)  # rendering needs no database


def regions_of(html: str) -> dict[str, HtmlElement]:
    return {el.get("id").rsplit("-", 1)[1]: el for el in parse(html)}


def text(el: HtmlElement) -> str:
    """Return the element's text as a reader hears it: element boundaries count as spaces."""
    return " ".join(" ".join(el.itertext()).split())


def flush(op: Scripted, state: LiveState) -> str | None:
    """Take the changes and render them exactly as publish.LiveChannel does."""
    changes = state.take_changes()
    if changes is None:
        return None
    new_log = None if "log" not in changes.regions else changes.new_log
    return render_regions(op, changes.view, changes.regions, new_log=new_log, log_max=TAIL)


def snapshot(op: Scripted, state: LiveState) -> Page:
    return Page.from_html(render_regions(op, state.current(), ALL_REGIONS, log_max=TAIL))


# --- the region elements -------------------------------------------------------------


@pytest.mark.parametrize("phase", list(Phase))
def test_every_region_element_carries_the_contract(op: Scripted, phase: Phase) -> None:
    view = StateView(version=17, attempt=3, phase=phase, log_tail=((1, "a"),))
    elements = list(parse(render_regions(op, view, ALL_REGIONS)))
    assert [el.get("id") for el in elements] == [f"liveop-{op.pk}-{r}" for r in ALL_REGIONS]
    assert [region_id(op, r) for r in ALL_REGIONS] == [el.get("id") for el in elements]
    for el in elements:
        assert el.get("hx-swap-oob") == "true"
        assert el.get("data-liveop-v") == "17"
        assert el.get("data-liveop-attempt") == "3"
        assert (el.get("data-liveop-terminal") is not None) is phase.is_terminal


def test_only_the_asked_regions_are_rendered(op: Scripted) -> None:
    html = render_regions(op, StateView(), ["progress", "status"])
    assert list(regions_of(html)) == ["status", "progress"]


def test_new_log_lines_are_an_append_keyed_by_sequence(op: Scripted) -> None:
    view = StateView(version=5, phase=Phase.STARTED, log_tail=((1, "a"), (2, "b"), (3, "c")))
    log = regions_of(render_regions(op, view, ["log"], new_log=((3, "c"),), log_max=50))["log"]
    assert log.get("hx-swap-oob") == "beforeend"
    assert log.get("data-liveop-log-max") == "50"
    (line,) = log
    assert (line.get("id"), line.get("data-liveop-seq"), line.text) == (
        f"liveop-{op.pk}-log-3",
        "3",
        "c",
    )


def test_a_terminal_log_is_replaced_whole(op: Scripted) -> None:
    view = StateView(phase=Phase.FINISHED_OK, log_tail=((1, "a"), (2, "b"), (3, "c")))
    log = regions_of(render_regions(op, view, ["log"], new_log=((3, "c"),), log_max=2))["log"]
    assert log.get("hx-swap-oob") == "true"
    assert [li.get("data-liveop-seq") for li in log] == ["2", "3"]


# --- accessible progress and state in words ------------------------------------------


def test_the_progress_bar_is_accessible(op: Scripted) -> None:
    view = StateView(phase=Phase.STARTED, percent=42.4)
    bar = regions_of(render_regions(op, view, ["progress"]))["progress"][0]
    assert bar.get("role") == "progressbar"
    assert (bar.get("aria-valuemin"), bar.get("aria-valuemax")) == ("0", "100")
    assert bar.get("aria-valuenow") == "42"
    assert bar.get("aria-label") == "Progress"
    assert "42%" in text(bar)


def test_a_count_without_total_says_so_without_a_value(op: Scripted) -> None:
    view = StateView(phase=Phase.STARTED, done=3, track_label="Rows", track_unit="row")
    bar = regions_of(render_regions(op, view, ["progress"]))["progress"][0]
    assert bar.get("role") == "progressbar"
    assert bar.get("aria-valuenow") is None
    assert bar.get("aria-valuetext") == "3 rows"
    assert text(bar) == "Rows : 3 rows done"


def test_a_started_operation_without_figures_shows_a_busy_bar(op: Scripted) -> None:
    bar = regions_of(render_regions(op, StateView(phase=Phase.STARTED), ["progress"]))["progress"]
    assert bar[0].get("role") == "progressbar"
    assert bar[0].get("aria-valuenow") is None
    assert text(bar) == "Working…"


@pytest.mark.parametrize(
    ("phase", "status", "result"),
    [
        (Phase.NOT_STARTED, "Waiting to start", ""),
        (Phase.STARTED, "In progress", ""),
        (Phase.FINISHED_OK, "Finished", "Result The operation finished successfully."),
        (
            Phase.FINISHED_ERROR,
            "Failed",
            "Error The operation failed. The error has been recorded.",
        ),
        (Phase.CANCELLED, "Cancelled", "The operation was cancelled."),
    ],
)
def test_the_state_is_said_in_words(op: Scripted, phase: Phase, status: str, result: str) -> None:
    stages = (
        ("Upload", StageState.DONE),
        ("Check", StageState.FAILED),
        ("Import", StageState.CANCELLED),
        ("Index", StageState.ACTIVE),
        ("Mail", StageState.PENDING),
    )
    view = StateView(phase=phase, stages=stages, traceback="Traceback: secret")
    found = regions_of(render_regions(op, view))
    assert text(found["status"]) == status
    assert text(found["result"]) == result
    assert text(found["stages"]) == (
        "1 of 5 stages done "
        "Upload (done) Check (failed) Import (cancelled) Index (in progress) Mail (pending)"
    )
    assert "secret" not in text(found["result"])


@pytest.mark.parametrize(
    ("states", "summary", "value"),
    [
        ((StageState.ACTIVE,), "0 of 1 stage done", "0"),
        ((StageState.DONE, StageState.DONE, StageState.ACTIVE), "2 of 3 stages done", "2"),
        ((StageState.DONE, StageState.DONE), "2 of 2 stages done", "2"),
    ],
)
def test_the_stages_say_how_far_the_operation_is_overall(
    op: Scripted, states: tuple[StageState, ...], summary: str, value: str
) -> None:
    stages = tuple((f"Stage {n}", state) for n, state in enumerate(states))
    view = StateView(phase=Phase.STARTED, stages=stages)
    found = regions_of(render_regions(op, view, ["stages"]))["stages"]
    (said,) = found.find_class("liveops-stage-summary")
    assert text(said) == summary
    meter = found.find(".//progress")
    assert (meter.get("value"), meter.get("max")) == (value, str(len(states)))
    assert meter.get("aria-label") == "Stages done"


def test_the_status_level_is_said_in_words(op: Scripted) -> None:
    view = StateView(phase=Phase.STARTED, status_text="Disk almost full", status_level="warning")
    assert text(regions_of(render_regions(op, view, ["status"]))["status"]) == (
        "In progress : Warning: Disk almost full"
    )


def test_staff_see_the_traceback(op: Scripted) -> None:
    view = StateView(phase=Phase.FINISHED_ERROR, traceback="Traceback: ZeroDivisionError")
    for_staff = regions_of(render_regions(op, view, ["result"], staff=True))["result"]
    for_owner = regions_of(render_regions(op, view, ["result"]))["result"]
    assert "ZeroDivisionError" in text(for_staff)
    assert "ZeroDivisionError" not in text(for_owner)


# --- templates per operation type ----------------------------------------------------


def use_templates(settings: Any, templates: dict[str, str]) -> None:
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": False,
            "OPTIONS": {
                "loaders": [
                    ("django.template.loaders.locmem.Loader", templates),
                    "django.template.loaders.app_directories.Loader",
                ]
            },
        }
    ]


def test_templates_can_be_overridden_per_operation_type(op: Scripted, settings: Any) -> None:
    use_templates(
        settings,
        {
            "liveops/testapp/scripted/status.html": (
                "<em>{{ phase_label }}: {{ view.status_text }}</em>"
            ),
            "testapp/scripted_result.html": "<b>{{ result.imported }} rows imported</b>",
        },
    )
    view = StateView(
        version=4, phase=Phase.FINISHED_OK, status_text="<done>", result_context={"imported": 12}
    )
    found = regions_of(render_regions(op, view))
    assert found["status"].find("em") is not None
    assert text(found["status"]) == "Finished: <done>"
    assert text(found["result"]) == "12 rows imported"
    for name in ("status", "result"):  # the region element itself is still ours
        assert found[name].get("data-liveop-v") == "4"
        assert found[name].get("data-liveop-terminal") is not None
    other = regions_of(render_regions(Gated(owner_id=1), view))
    assert other["status"].find("em") is None
    assert text(other["result"]) == "Result imported 12"


RESULT_TEMPLATE = {
    "testapp/scripted_result.html": (
        "<p>Imported {{ imported }} of {{ result.total }}; "
        "op={{ op.pk }}; continue={{ success_url|default:'-' }}</p>"
    )
}


def test_the_result_template_gets_the_result_keys_at_the_top_level(
    op: Scripted, settings: Any
) -> None:
    use_templates(settings, RESULT_TEMPLATE)
    view = StateView(
        phase=Phase.FINISHED_OK, result_context={"imported": 12, "total": 13, "op": "mine"}
    )
    result = regions_of(render_regions(op, view, ["result"]))["result"]
    # {{ result.x }} keeps working; a key named like one of ours does not replace ours.
    assert text(result) == f"Imported 12 of 13; op={op.pk}; continue=-"


@pytest.mark.parametrize(
    ("phase", "shown"),
    [
        (Phase.NOT_STARTED, ""),
        (Phase.STARTED, ""),
        (Phase.FINISHED_ERROR, "Error The operation failed. The error has been recorded."),
        (Phase.CANCELLED, "The operation was cancelled."),
    ],
)
def test_the_result_template_is_rendered_only_for_a_successful_end(
    op: Scripted, settings: Any, phase: Phase, shown: str
) -> None:
    use_templates(settings, RESULT_TEMPLATE)
    view = StateView(phase=phase, result_context={"imported": 12})
    assert text(regions_of(render_regions(op, view, ["result"]))["result"]) == shown


def test_a_chained_end_names_the_next_operation_instead_of_the_result_template(
    op: Scripted, settings: Any
) -> None:
    use_templates(settings, RESULT_TEMPLATE)
    chained = {"op": "t", "title": "Step two", "url": "/two/"}
    view = StateView(phase=Phase.FINISHED_OK, chained_to=chained)
    assert text(regions_of(render_regions(op, view, ["result"]))["result"]) == (
        "Result Next operation: Step two"
    )


def test_a_result_region_template_per_type_is_used_when_there_is_no_result_template(
    op: Scripted, settings: Any
) -> None:
    use_templates(settings, {"liveops/testapp/scripted/result.html": "<i>{{ result.n }}</i>"})
    view = StateView(phase=Phase.FINISHED_OK, result_context={"n": 5})
    assert text(regions_of(render_regions(op, view, ["result"]))["result"]) == "5"


def test_a_missing_result_template_falls_back_to_a_readable_list(op: Scripted) -> None:
    view = StateView(
        phase=Phase.FINISHED_OK, result_context={"imported": 12, "skipped": 0, "file": "a.csv"}
    )
    result = regions_of(render_regions(op, view, ["result"]))["result"]
    assert [
        (text(dt), text(dd)) for dt, dd in zip(result.iter("dt"), result.iter("dd"), strict=True)
    ] == [
        ("file", "a.csv"),
        ("imported", "12"),
        ("skipped", "0"),
    ]


# --- ticks add up to the snapshot ----------------------------------------------------

SCENARIO: list[Callable[[LiveState], object]] = [
    lambda s: s.start(),
    lambda s: s.set_status("Reading the file", "info"),
    lambda s: [s.set_percent(p) for p in (5, 12.5, 30)],
    lambda s: s.add_log([f"read {n}" for n in range(3)]),
    lambda s: (
        s.set_stages((("Prepare", StageState.ACTIVE), ("Work", StageState.PENDING))),
        s.add_log(["prepared"]),
    ),
    lambda s: [s.set_count(n, 40, "Rows", "row") for n in range(1, 25)],
    lambda s: s.add_log([f"row {n} ok" for n in range(50)]),  # far beyond the tail
    lambda s: (
        s.set_stages((("Prepare", StageState.DONE), ("Work", StageState.ACTIVE))),
        [s.set_count(n, None, "Files", "file") for n in range(1, 4)],
    ),
    lambda s: s.set_status("Almost there", "warning"),
    lambda s: s.add_log(["one more"]),
    lambda s: (s.add_log(["two more", "three more"]), s.set_percent(99)),
]


def finish(state: LiveState) -> None:
    state.finish(
        Phase.FINISHED_OK,
        result_context={"imported": 24},
        stages=(("Prepare", StageState.DONE), ("Work", StageState.DONE)),
    )
    state.release()


def assert_page_equals_snapshot(page: Page, op: Scripted, state: LiveState) -> None:
    """Compare region by region, leaving out dom.BOOKKEEPING (version and phase rendered at)."""
    expected = snapshot(op, state)
    for name in ALL_REGIONS:
        element_id = region_id(op, name)
        assert page.region(element_id) == expected.region(element_id), name


def test_the_ticks_add_up_to_the_snapshot(op: Scripted) -> None:
    state = LiveState(log_tail_size=TAIL)
    page = snapshot(op, state)
    for batch in [*SCENARIO, finish]:
        batch(state)
        html = flush(op, state)
        assert html is not None
        assert page.apply_frame(frame(html))
        assert page.apply_frame(frame(html)) == []  # idempotent: the second time changes nothing
        assert_page_equals_snapshot(page, op, state)


def test_random_ticks_add_up_to_the_snapshot(op: Scripted) -> None:
    rng = random.Random(20240501)
    changes: list[Callable[[LiveState], object]] = [
        lambda s: s.set_status(f"status {rng.random():.3f}", rng.choice(["info", "warning"])),
        lambda s: s.set_percent(rng.uniform(0, 100)),
        lambda s: s.set_count(rng.randint(0, 50), rng.choice([None, 50]), "Rows", "row"),
        lambda s: s.add_log([f"line {rng.random():.4f}" for _ in range(rng.randint(1, 3 * TAIL))]),
        lambda s: s.set_stages((("Prepare", rng.choice(list(StageState))),)),
    ]
    state = LiveState(log_tail_size=TAIL)
    page = snapshot(op, state)
    state.start()
    for _ in range(300):
        for _ in range(rng.randint(1, 6)):
            rng.choice(changes)(state)
        html = flush(op, state)
        assert html is not None
        page.apply_html(html)
        assert_page_equals_snapshot(page, op, state)
    finish(state)
    page.apply_html(flush(op, state) or "")
    assert_page_equals_snapshot(page, op, state)


# --- the client model itself, on real fragments --------------------------------------


def test_stale_and_non_terminal_regions_do_not_overwrite_newer_ones(op: Scripted) -> None:
    state = LiveState(log_tail_size=TAIL)
    page = snapshot(op, state)
    state.start()
    page.apply_html(flush(op, state) or "")
    state.set_status("old", "info")
    old_tick = flush(op, state)
    state.set_status("new", "info")
    new_tick = flush(op, state)
    assert old_tick is not None
    assert new_tick is not None
    assert page.apply_html(new_tick) == [region_id(op, "status")]
    assert page.apply_html(old_tick) == []  # rule 3
    assert text(page.find(region_id(op, "status"))) == "In progress : new"
    finish(state)
    page.apply_html(flush(op, state) or "")
    state.set_status("newer, but not final", "info")  # what a stray tick would carry
    stray = render_regions(op, StateView(**{**state.current().__dict__, "phase": Phase.STARTED}))
    assert page.apply_html(stray) == []  # rule 2
    assert text(page.find(region_id(op, "status"))) == "Finished : new"


def test_log_lines_are_keyed_by_sequence(op: Scripted) -> None:
    state = LiveState(log_tail_size=TAIL)
    page = snapshot(op, state)
    state.add_log(["a", "b"])
    first = flush(op, state)
    state.add_log(["c"])
    second = flush(op, state)
    assert first is not None
    assert second is not None
    page.apply_html(first)
    page.apply_html(second)
    assert page.apply_html(first) == []  # stale: dropped
    page.apply_html(second)  # re-delivered: replaces itself
    log = page.find(region_id(op, "log"))
    assert [li.text for li in log] == ["a", "b", "c"]
    # A line missing from the page, delivered with a newer version, goes to its place.
    late = StateView(version=state.version + 1, phase=Phase.STARTED)
    page.apply_html(render_regions(op, late, ["log"], new_log=((0, "zero"),), log_max=TAIL))
    assert [li.text for li in log] == ["zero", "a", "b", "c"]


def test_a_new_attempt_starts_a_fresh_log(op: Scripted) -> None:
    page = Page.from_html(
        render_regions(op, StateView(attempt=1, version=9, log_tail=((1, "old"),)))
    )
    retry = LiveState(StateView(attempt=2), TAIL)
    retry.start()
    retry.add_log(["new"])
    page.apply_html(flush(op, retry) or "")
    log = page.find(region_id(op, "log"))
    assert [li.text for li in log] == ["new"]
    assert log.get("data-liveop-attempt") == "2"


# --- hostile text stays text ---------------------------------------------------------

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "attribute": '"><img src=x onerror=alert(1)>',
    "single-quote": "' onmouseover='x",
    "template": "{{ 7*7 }}{% debug %}",
    "unicode": "\u202eevil\u200d e\u0301\u0308 \U0001f600 \U00010348 nul\x00end",
    "megabyte": "<script>" + "x" * 1_000_000,
}


def as_parsed(value: str) -> str:
    # libxml2's HTML parser reads NUL as U+FFFD (a browser drops it): text either way.
    return value.replace("\x00", "\ufffd")


def same_or_clipped(shown: str, value: str) -> bool:
    expected = as_parsed(value)
    return shown == expected or (shown.endswith("…") and expected.startswith(shown[:-1]))


def hostile_frames(op: Scripted, value: str) -> dict[str, str]:
    state = LiveState(log_tail_size=TAIL)
    state.start()
    state.set_status(value, "warning")
    state.set_stages(((value, StageState.ACTIVE), ("Work", StageState.PENDING)))
    state.set_count(3, None, value, value)
    state.add_log([value])
    tick = flush(op, state)
    assert tick is not None
    done = LiveState(StateView(phase=Phase.STARTED, stages=((value, StageState.DONE),)), TAIL)
    done.add_log([value])
    done.finish(Phase.FINISHED_OK, result_context={value: value, "nested": {value: [value]}})
    failed = LiveState(StateView(phase=Phase.STARTED), TAIL)
    failed.finish(Phase.FINISHED_ERROR, error_message=value, traceback=value)
    return {
        "tick": frame(tick),
        "finished": frame(render_regions(op, done.current(), log_max=TAIL)),
        "failed": frame(render_regions(op, failed.current(), staff=True, log_max=TAIL)),
    }


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_renders_inert(op: Scripted, value: str) -> None:
    frames = hostile_frames(op, value)
    trees: dict[str, HtmlElement] = {}
    for name, sent in frames.items():
        sent.encode("utf-8")  # a WebSocket text frame must be valid UTF-8
        html = json.loads(sent)["liveop_html"]
        tree = parse(html)
        trees[name] = tree
        assert list(tree.iter("script", "img")) == [], name
        elements = list(tree.iter(etree.Element))
        assert [a for el in elements for a in el.attrib if a.lower().startswith("on")] == []
        assert {el.tag for el in elements} <= {
            "div", "p", "strong", "span", "ol", "li", "h2", "dl", "dt", "dd", "details",
            "summary", "pre", "progress",
        }  # fmt: skip
    tick, finished, failed = trees["tick"], trees["finished"], trees["failed"]

    (status_text,) = tick.find_class("liveops-status-text")
    (log_line,) = [li for li in tick.iter("li") if li.get("data-liveop-seq")]
    (stage_name, _work) = tick.find_class("liveops-stage-name")
    (track_label,) = tick.find_class("liveops-track-label")
    bar = tick.find(".//*[@role='progressbar']")
    if value is HOSTILE["megabyte"]:
        assert status_text.text == value[: STATUS_MAX - 1] + "…"
        assert log_line.text == value[: LOG_LINE_MAX - 1] + "…"
    else:
        assert status_text.text == as_parsed(value)
        assert log_line.text == as_parsed(value)
    assert same_or_clipped(stage_name.text, value)
    assert same_or_clipped(track_label.text, value)
    assert same_or_clipped(bar.get("aria-valuetext")[len(f"3 {TIMES} ") :], value)

    result = finished.find_class("liveops-result-items")[0]
    keys = [dt.text for dt in result.iter("dt")]
    assert len(keys) == 2
    assert any(same_or_clipped(key, value) for key in keys)
    assert any(same_or_clipped(dd.text or "", value) for dd in result.iter("dd"))

    (alert,) = failed.find_class("liveops-error")
    assert same_or_clipped(alert.find("p").text, value)
    assert same_or_clipped(alert.find(".//pre").text, value)


@pytest.mark.parametrize(
    ("language", "done", "unit", "shown"),
    [
        ("en", 1, "row", "1 row"),
        ("en", 1500, "row", "1,500 rows"),
        ("en", 1, "item", "1 item"),
        ("en", 3, "item", "3 items"),
        ("en", 2, "KB/s", f"2 {TIMES} KB/s"),  # not a plain word: no guessed plural
        ("fr", 2, "ligne", f"2 {TIMES} ligne"),  # no English plural rules elsewhere
    ],
)
def test_a_count_reads_naturally(
    op: Scripted, language: str, done: int, unit: str, shown: str
) -> None:
    op.language = language
    view = StateView(phase=Phase.STARTED, done=done, track_unit=unit)
    bar = regions_of(render_regions(op, view, ["progress"]))["progress"][0]
    assert bar.get("aria-valuetext") == shown


@pytest.mark.parametrize(
    ("phase", "url", "linked"),
    [
        (Phase.FINISHED_OK, "/reports/7/?tab=<b>", True),
        (Phase.FINISHED_OK, None, False),
        (Phase.FINISHED_ERROR, "/reports/7/", False),
        (Phase.STARTED, "/reports/7/", False),
    ],
)
def test_a_success_url_is_a_continue_link_in_the_result(
    op: Scripted, monkeypatch: pytest.MonkeyPatch, phase: Phase, url: str | None, linked: bool
) -> None:
    monkeypatch.setattr(Scripted, "get_success_url", lambda self: url)
    found = regions_of(render_regions(op, StateView(phase=phase), ["result"]))["result"]
    links = found.findall(".//a[@data-liveop-continue]")
    assert [(a.get("href"), a.text) for a in links] == ([(url, "Continue")] if linked else [])


def eta_of(op: Scripted, **view: Any) -> str | None:
    found = regions_of(render_regions(op, StateView(**view), ["progress"]))["progress"]
    eta = found.find_class("liveops-eta")
    return text(eta[0]) if eta else None


@pytest.mark.parametrize(
    ("percent", "elapsed", "shown"),
    [
        (50, 20, "About 20 seconds left"),
        (80, 20, "About 5 seconds left"),  # never "0 seconds"
        (25, 60, "About 3 minutes left"),
        (10, 3600, "About 9 hours left"),
        (1.5, 600, None),  # too little done to tell
        (60, 1, None),  # too early to tell
        (100, 20, None),
    ],
)
def test_a_running_bar_shows_the_time_left_at_its_pace(
    op: Scripted, percent: float, elapsed: float, shown: str | None
) -> None:
    since = time.time() - elapsed
    assert eta_of(op, phase=Phase.STARTED, percent=percent, progress_since=since) == shown


def test_no_time_left_without_a_live_pace_or_once_ended(op: Scripted) -> None:
    since = time.time() - 20
    assert eta_of(op, phase=Phase.STARTED, percent=50) is None  # a snapshot: no pace
    assert eta_of(op, phase=Phase.FINISHED_OK, percent=50, progress_since=since) is None
    op.language = "de"  # the duration in Django's own catalogue, the sentence in ours
    german = eta_of(op, phase=Phase.STARTED, percent=25, progress_since=time.time() - 60)
    assert german is not None
    assert "3 Minuten" in german
    assert "About" not in german


def test_the_pace_restarts_when_a_new_bar_starts() -> None:
    state = LiveState()
    state.set_percent(10)
    first = state.current().progress_since
    assert first is not None
    state.set_percent(60)
    assert state.current().progress_since == first  # the same bar moving on
    state.set_percent(5)
    assert state.current().progress_since > first  # went back: a new bar
    again = state.current().progress_since
    state.set_count(0, 10, "Rows", "row")
    assert state.current().progress_since >= again
    counted = state.current().progress_since
    state.set_count(4, 10, "Rows", "row")
    assert state.current().progress_since == counted
