"""The region cases of tests/region_cases.py, through the page model and the hub's merge.

The page model (tests/dom.py) must end each case as the case says, frame by frame. The
hub's merge (``Update.merged``, what a socket that lags gets) must leave the page as
applying every frame in turn would: the merged frame, applied to the same page, ends
with the same element. tests/test_client_js.py runs the same cases through liveops.js.
"""

from __future__ import annotations

import functools
import json

import pytest

from liveops._updates import Chunk, Rank, Update
from tests.dom import Page, canonical, log_max, parse, rank
from tests.region_cases import CASES, Case, container

GROUP = "liveop.jobs.export.1"
DEFAULT_LOG_MAX = 200  # LIVEOPS["LOG_TAIL"]'s default, for a page without a log max
#: A merged element may carry the swap style of another element of its region.
MERGE_IGNORES = ("hx-swap-oob",)


def case_params() -> list[object]:
    """Return the cases as pytest params, named."""
    return [pytest.param(case, id=case.name) for case in CASES]


def frame(html: str) -> str:
    return json.dumps({"liveop_html": html})


def result(page: Page, case: Case, ignore: tuple[str, ...] = ()) -> str | None:
    """Return the case's element as it is in ``page``, canonical, or None when absent."""
    found = page.find(case.element_id)
    return None if found is None else canonical(found, ignore)


def expected(case: Case, ignore: tuple[str, ...] = ()) -> str | None:
    return None if case.result is None else canonical(case.result, ignore)


def update_of(html: str, keep: int) -> Update:
    """Return the one-chunk update a publisher flush holding ``html`` would be."""
    (element,) = parse(html)
    append = element.get("hx-swap-oob") == "beforeend"
    seqs = [int(child.get("data-liveop-seq", 0)) for child in element if child.tag == "li"]
    lines = len(seqs) if append else 0
    oldest, newest = (min(seqs), max(seqs)) if seqs else (0, 0)
    chunk = Chunk(
        Rank(*rank(element)), html, append=append, lines=lines, oldest=oldest, newest=newest
    )
    return Update(GROUP, {element.get("id") or "": (chunk,)}, keep)


def merged_frame(case: Case) -> str:
    """Return the frame a lagging socket gets for every element of ``case`` merged."""
    old = parse(case.page)[0] if case.page else None
    keep = log_max(old) if old is not None else None
    if keep is None or keep < 0:
        keep = DEFAULT_LOG_MAX
    updates = [update_of(html, keep) for html in case.arriving]
    return functools.reduce(Update.merged, updates).frame


@pytest.mark.parametrize("case", case_params())
def test_the_page_model(case: Case) -> None:
    page = Page.from_html(container(case.page))
    applied = [bool(page.apply_frame(frame(html))) for html in case.arriving]
    assert applied == list(case.applied)
    assert result(page, case) == expected(case)


@pytest.mark.parametrize("case", case_params())
def test_the_hub_merge(case: Case) -> None:
    page = Page.from_html(container(case.page))
    page.apply_frame(merged_frame(case))
    assert result(page, case, MERGE_IGNORES) == expected(case, MERGE_IGNORES)
