"""The templates' layout: readable lines in the files, the markup of one line in the output.

The package's templates are laid out over short indented lines inside
``{% joinlines %}`` (liveops.templatetags.liveops), which drops the template's own line
breaks when it is compiled: the fragments sent over the socket stay what they were, and
the values rendered into them keep their line breaks.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.paginator import Paginator
from django.template import Context, Template
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

import liveops
from liveops._fragments import render_parts
from liveops._state import Phase, StageState, StateView
from tests.testapp.models import Scripted

TEMPLATES = Path(liveops.__file__).resolve().parent / "templates" / "liveops"
LONGEST = 120
#: Not laid out: the prose of the developer's notices, whose line breaks are output.
UNCHECKED = {"_dev_notices.html"}
#: A value with line breaks of its own, which the output must keep.
BROKEN = "one\n  two"


class Op(SimpleNamespace):
    """What the container reads of an operation."""

    def __str__(self) -> str:
        return "Export <all>"


def joined(source: str, **context: Any) -> str:
    return Template("{% load liveops %}" + source).render(Context(context))


# --- the files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    sorted(
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if path.name not in UNCHECKED
    ),
)
def test_no_template_line_is_too_long(name: str) -> None:
    lines = (TEMPLATES / name).read_text().splitlines()
    long = [(number, len(line)) for number, line in enumerate(lines, 1) if len(line) > LONGEST]
    assert not long, f"{name}: lines longer than {LONGEST} characters (number, length): {long}"


# --- the tag ----------------------------------------------------------------------------


def test_joinlines_drops_the_line_breaks_and_the_indentation() -> None:
    source = "{% joinlines %}\n<p>\n  <b>a</b>\n  \t<i>b</i>\r\n</p>\n{% endjoinlines %}"
    assert joined(source) == "<p><b>a</b><i>b</i></p>"


def test_a_space_before_a_comment_stays() -> None:
    source = "{% joinlines %}\n<b>a</b> {# a space #}\n<i>b</i>\n<u>c</u>\n{% endjoinlines %}"
    assert joined(source) == "<b>a</b> <i>b</i><u>c</u>"


def test_spaces_within_a_line_stay() -> None:
    assert joined("{% joinlines %}<b>a</b> <i>b</i>{% endjoinlines %}") == "<b>a</b> <i>b</i>"
    assert joined("{% joinlines %}a\u00a0\n b{% endjoinlines %}") == "a\u00a0b"  # text, kept


def test_rendered_values_keep_their_line_breaks() -> None:
    source = "{% joinlines %}\n<pre>\n  {{ value }}\n</pre>\n{% endjoinlines %}"
    assert joined(source, value=BROKEN) == f"<pre>{BROKEN}</pre>"
    assert joined(source, value=BROKEN) == f"<pre>{BROKEN}</pre>"  # compiled once, rendered twice


def test_the_branches_of_if_for_and_with_are_joined_too() -> None:
    source = (
        "{% joinlines %}\n{% for x in xs %}\n  {% if x %}\n    <b>{{ x }}</b>\n  {% else %}\n"
        "    <i>-</i>\n  {% endif %}\n{% endfor %}\n{% with y=1 %}\n  <u>{{ y }}</u>\n"
        "{% endwith %}\n{% endjoinlines %}"
    )
    assert joined(source, xs=[1, 0]) == "<b>1</b><i>-</i><u>1</u>"


def test_the_text_outside_the_block_is_left_alone() -> None:
    assert joined("a\n {% joinlines %}\n b\n{% endjoinlines %}\n c") == "a\n b\n c"


# --- the regions ------------------------------------------------------------------------


def views() -> list[tuple[StateView, bool]]:
    """A view for each branch of the region templates, and whether staff see it."""
    stages = tuple(zip(("Fetch", "Parse", "Load", "Index", "Tidy"), StageState, strict=True))
    return [
        (StateView(phase=Phase.NOT_STARTED), False),
        (
            StateView(
                phase=Phase.STARTED,
                status_text="Importing",
                status_level="warning",
                percent=50.5,
                done=5,
                total=10,
                track_label="Rows",
                progress_since=time.time() - 60,
                stages=stages,
                cancel_requested=True,
            ),
            False,
        ),
        (StateView(phase=Phase.STARTED, status_text="Hm", status_level="error", done=3), False),
        (StateView(phase=Phase.STARTED, done=3, track_label="Rows", track_unit="row"), False),
        (StateView(phase=Phase.STARTED, stages=stages[:1]), False),
        (StateView(phase=Phase.FINISHED_OK, result_context={"rows": 3, "skipped": 0}), False),
        (
            StateView(
                phase=Phase.FINISHED_OK,
                chained_to={"op": "testapp.scripted:2", "url": "/ops/2/", "title": "Next"},
            ),
            False,
        ),
        (
            StateView(
                phase=Phase.FINISHED_OK, chained_to={"op": "a:1", "url": "", "title": "Next"}
            ),
            False,
        ),
        (
            StateView(phase=Phase.FINISHED_ERROR, error_message="Boom", traceback="Traceback"),
            True,
        ),
        (StateView(phase=Phase.FINISHED_ERROR), False),
        (StateView(phase=Phase.CANCELLED, percent=100), False),
    ]


def inner(part: str) -> str:
    """The markup the region's template gave, less the line break its file ends with."""
    return part[part.index(">") + 1 : part.rindex("</div>")].removesuffix("\n")


@pytest.mark.parametrize(
    ("view", "staff"), views(), ids=[f"{n}-{v.phase.value}" for n, (v, _) in enumerate(views())]
)
def test_a_region_renders_on_one_line(view: StateView, staff: bool) -> None:
    parts = render_parts(Scripted(owner_id=1), view, staff=staff)
    for name, part in parts.items():
        if name != "log":  # rendered in code, not from a template
            assert "\n" not in inner(part), f"{name}: {inner(part)!r}"


def test_a_region_keeps_the_line_breaks_of_its_values() -> None:
    view = StateView(
        phase=Phase.FINISHED_ERROR,
        status_text=BROKEN,
        error_message=BROKEN,
        traceback=BROKEN,
        percent=10,
        track_label=BROKEN,
        stages=((BROKEN, StageState.FAILED),),
    )
    parts = render_parts(Scripted(owner_id=1), view, staff=True)
    for name in ("status", "progress", "stages", "result"):
        assert BROKEN in inner(parts[name]), name
        assert "\n" not in inner(parts[name]).replace(BROKEN, ""), name


# --- the container and the list: the line breaks outside {% joinlines %} are output ------


def test_the_container_is_one_element_a_line() -> None:
    regions = ("status", "notice", "progress", "stages", "extras", "log", "result")
    html = render_to_string(
        "liveops/container.html",
        {
            "op": Op(language="fr", live_token="app.job:7"),
            "container_id": "liveop-7",
            "connection_id": "liveop-7-connection",
            "ws_path": "/ws/liveops/",
            "grant": "g1",
            "client_texts": "{}",
            "cancel_url": "/c/",
            "retry_url": "/r/",
            "csrf_token": "tok",
            "regions": {name: mark_safe(f"<{name}>") for name in regions},
        },
    )
    token = '<input type="hidden" name="csrfmiddlewaretoken" value="tok">'
    assert html.split("\n") == [
        '<section id="liveop-7" class="liveops" lang="fr" data-liveop="app.job:7"'
        ' data-liveop-ws="/ws/liveops/" data-liveop-texts="{}" data-liveop-grant="g1"'
        ' aria-label="Export &lt;all&gt;">',
        '<p id="liveop-7-connection" class="liveops-connection" role="status"'
        ' aria-live="polite"></p>',
        '<div class="liveops-live" aria-live="polite" aria-atomic="true"><status></div>',
        '<div class="liveops-live" aria-live="polite"><notice></div>',
        f'<form class="liveops-cancel" method="post" action="/c/">{token}'
        '<button type="submit" class="liveops-button">Cancel</button></form>',
        f'<form class="liveops-retry" method="post" action="/r/">{token}'
        '<button type="submit" class="liveops-button">Run again</button></form>',
        "<progress>",
        "<stages>",
        "<extras><log>",
        '<div class="liveops-live" aria-live="polite"><result></div>',
        "</section>",
        "",
    ]


def test_the_list_is_one_element_a_line() -> None:
    html = render_to_string(
        "liveops/list.html",
        {
            "caption": "Jobs",
            "label": "app.job",
            "ws_path": "/ws/liveops/",
            "page": Paginator(list(range(30)), 10).page(2),
            "per_page": 10,
            "rows": [mark_safe("<tr>a</tr>"), mark_safe("<tr>b</tr>")],
            "status_id": "s",
            "texts": "{}",
            "previous_url": "?page=1",
            "next_url": "?page=3",
        },
    )
    headers = ("Operation", "State", "Owner", "Started", "Duration")
    assert html.split("\n") == [
        '<table class="liveops-list">',
        "<caption>Jobs</caption>",
        "<thead><tr>" + "".join(f'<th scope="col">{h}</th>' for h in headers) + "</tr></thead>",
        '<tbody data-liveop-list="app.job" data-liveop-ws="/ws/liveops/"'
        ' data-liveop-list-page="2" data-liveop-list-per-page="10"'
        ' data-liveop-list-status="s" data-liveop-texts="{}">',
        "<tr>a</tr>",
        "<tr>b</tr>",
        '<tr class="liveops-list-empty" data-liveop-list-empty hidden>'
        '<td colspan="5">No operations yet.</td></tr>',
        "</tbody>",
        "</table>",
        '<p id="s" class="liveops-list-connection" role="status" aria-live="polite"></p>',
        '<nav class="liveops-pagination" aria-label="Pages of the list">',
        '<a href="?page=1" rel="prev" aria-label="Previous page">Previous</a>',
        '<span class="liveops-pagination-current">Page 2 of 3</span>',
        '<a href="?page=3" rel="next" aria-label="Next page">Next</a>',
        "</nav>",
        "",
    ]


def test_a_list_row_renders_on_one_line() -> None:
    html = render_to_string(
        "liveops/list_row.html",
        {
            "title": "Export",
            "url": "/ops/7/",
            "phase": "STARTED",
            "state_text": "In progress",
            "owner_name": "alice",
            "started_on": None,
            "started_iso": "",
            "duration_text": "",
        },
    )
    assert html == (
        '<td class="liveops-row-op"><a href="/ops/7/">Export</a></td>'
        '<td class="liveops-row-state" data-liveop-label="State" data-liveop-phase="STARTED">'
        'In progress</td><td class="liveops-row-owner" data-liveop-label="Owner">alice</td>'
        '<td class="liveops-row-started" data-liveop-label="Started">—</td>'
        '<td class="liveops-row-duration" data-liveop-label="Duration">—</td>\n'
    )
