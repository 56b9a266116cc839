"""How region elements are applied to a page: one table of cases for every implementation.

docs/protocol.md, "Applying a region element", rules 1-6, say how an element arriving
over the socket is applied to the element of the same id in the page. Three pieces of
code follow them: liveops.js in the browser, the page model of tests/dom.py, and the
hub's merge for a socket that lags (``liveops._updates.Update.merged``). Each case below
is plain data: the element in the page, the elements arriving (one frame each, in
order), and what the page holds afterwards. tests/test_region_cases.py runs every case
through the page model and the merge; tests/test_client_js.py through liveops.js in
Chromium.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from liveops._protocol import ATTRIBUTES as A

__all__ = ["CASES", "CONNECTION", "PK", "TOKEN", "Case", "container", "rid"]

PK = "0b7f5c1e-2f4a-4c59-9b8e-3d2a1f6e7a01"
TOKEN = f"jobs.export:{PK}"

#: An attribute's value as written in the HTML; None leaves the attribute out.
Value = int | str | None


def rid(name: str) -> str:
    """Return the id of the operation's region ``name``."""
    return f"liveop-{PK}-{name}"


def region(
    name: str,
    body: str = "",
    *,
    v: Value = 1,
    attempt: Value = 1,
    terminal: bool = False,
    state: str | None = None,
    tag: str = "div",
    oob: str = "true",
    log_max: Value = None,
    reversed_attributes: bool = False,
) -> str:
    """Render one region element as liveops._fragments does."""
    attrs = [f'id="{rid(name)}"', f'class="liveops-{name}"', f'hx-swap-oob="{oob}"']
    for attribute, value in (
        (A["version"], v),
        (A["attempt"], attempt),
        (A["state"], state),
        (A["log_max"], log_max),
    ):
        if value is not None:
            attrs.append(f'{attribute}="{value}"')
    if terminal:
        attrs.append(A["terminal"])
    if reversed_attributes:
        attrs.reverse()
    return f"<{tag} {' '.join(attrs)}>{body}</{tag}>"


def status(body: str, **rank: Any) -> str:
    return region("status", body, **rank)


def line(seq: Value, text: str | None = None, *, name: str | None = None) -> str:
    """Render a log line; ``name=""`` leaves out its id, ``seq=None`` its seq."""
    name = f"log-{seq}" if name is None else name
    attrs = [f'id="{rid(name)}"'] if name else []
    if seq is not None:
        attrs.append(f'{A["seq"]}="{seq}"')
    return f"<li {' '.join(attrs)}>{f'line {seq}' if text is None else text}</li>"


def log(
    seqs: tuple[int, ...] = (),
    *,
    body: str | None = None,
    oob: str = "beforeend",
    log_max: Value = 5,
    **rank: Any,
) -> str:
    """Render a log holding the lines with these seqs (or ``body``): an append by default."""
    lines = "".join(line(seq) for seq in seqs) if body is None else body
    return region("log", lines, tag="ol", oob=oob, log_max=log_max, **rank)


#: The connection region every case's container holds; it belongs to the client.
CONNECTION = f'<p id="{rid("connection")}" class="liveops-connection" role="status"></p>'


@dataclass(frozen=True)
class Case:
    """Elements arriving for one element of the page, and what the page holds after."""

    name: str
    #: The element in the page before, inside the operation's container; None: there is
    #: no element with the id the elements arrive for.
    page: str | None
    #: The elements that arrive, each in a frame of its own, in this order.
    arriving: tuple[str, ...]
    #: The element with that id afterwards (compared with sorted attributes); None: none.
    result: str | None
    #: For each frame, whether applying it changed the page (liveops.applyFrame returns
    #: the element's id then, and liveops:update fires).
    applied: tuple[bool, ...]
    #: The id whose element ``result`` describes, when it is not the one arriving.
    target: str | None = None

    @property
    def element_id(self) -> str:
        if self.target is not None:
            return self.target
        found = re.search(r'\bid="([^"]+)"', self.arriving[0])
        assert found, f"{self.name}: the first element arriving has no id"
        return found[1]


def container(page: str | None) -> str:
    """Render the operation's container holding ``page`` (and the connection region)."""
    return (
        f'<section id="liveop-{PK}" class="liveops" {A["op"]}="{TOKEN}" aria-label="Export">'
        f"{CONNECTION}{page or ''}</section>"
    )


_DONE = {"terminal": True, "state": "FINISHED_OK"}
_FAILED = {"terminal": True, "state": "FINISHED_ERROR"}
_EDITED = line(2, "line 2, edited")
_NO_SEQ = line(None, "no seq", name="log-x")

CASES: tuple[Case, ...] = (
    # ---- rule 1: the attempt ---------------------------------------------------------
    Case(
        "a newer attempt replaces the region, whatever its version",
        page=status("Failed", v=5, **_FAILED),
        arriving=(status("Retrying", v=1, attempt=2),),
        result=status("Retrying", v=1, attempt=2),
        applied=(True,),
    ),
    Case(
        "an older attempt is dropped, even terminal and with a higher version",
        page=status("Retrying", v=1, attempt=2),
        arriving=(status("Failed", v=9, attempt=1, **_FAILED),),
        result=status("Retrying", v=1, attempt=2),
        applied=(False,),
    ),
    # ---- rule 2: terminal ------------------------------------------------------------
    Case(
        "a terminal element outranks a higher live version of its attempt",
        page=status("Working", v=500),
        arriving=(status("Interrupted", v=13, **_FAILED),),
        result=status("Interrupted", v=13, **_FAILED),
        applied=(True,),
    ),
    Case(
        "a live element never replaces a terminal one of its attempt",
        page=status("Done", v=5, **_DONE),
        arriving=(status("Running", v=6),),
        result=status("Done", v=5, **_DONE),
        applied=(False,),
    ),
    # ---- rule 3: the version ---------------------------------------------------------
    Case(
        "a higher version replaces the region",
        page=status("Queued", v=1),
        arriving=(status("Running", v=2),),
        result=status("Running", v=2),
        applied=(True,),
    ),
    Case(
        "a lower version is dropped",
        page=status("Step 3", v=3),
        arriving=(status("Step 2", v=2),),
        result=status("Step 3", v=3),
        applied=(False,),
    ),
    Case(
        "an equal version that differs replaces the region (rule 3 drops lower ones only)",
        page=status("Running", v=2),
        arriving=(status("Running, 40 %", v=2),),
        result=status("Running, 40 %", v=2),
        applied=(True,),
    ),
    Case(
        "versions compare as numbers, not as text",
        page=status("Step 9", v=9),
        arriving=(status("Step 10", v=10),),
        result=status("Step 10", v=10),
        applied=(True,),
    ),
    Case(
        "both terminal: the higher version replaces",
        page=status("Done", v=5, **_DONE),
        arriving=(status("Done.", v=6, **_DONE),),
        result=status("Done.", v=6, **_DONE),
        applied=(True,),
    ),
    Case(
        "both terminal: the lower version is dropped",
        page=status("Done.", v=6, **_DONE),
        arriving=(status("Done", v=5, **_DONE),),
        result=status("Done.", v=6, **_DONE),
        applied=(False,),
    ),
    Case(
        "frames out of order end with the highest version",
        page=status("Queued", v=1),
        arriving=(status("Step 3", v=3), status("Step 2", v=2), status("Step 4", v=4)),
        result=status("Step 4", v=4),
        applied=(True, False, True),
    ),
    # ---- rules 5 and 6: replacing, and not applying the same element again ------------
    Case(
        "an element identical to the page's is not applied again",
        page=status("Running", v=2),
        arriving=(status("Running", v=2),),
        result=status("Running", v=2),
        applied=(False,),
    ),
    Case(
        "the same element twice leaves the page as once",
        page=status("Queued", v=1),
        arriving=(status("Running", v=2), status("Running", v=2)),
        result=status("Running", v=2),
        applied=(True, False),
    ),
    Case(
        "an element identical but for the order of its attributes is not applied again",
        page=status("Running", v=2),
        arriving=(status("Running", v=2, reversed_attributes=True),),
        result=status("Running", v=2),
        applied=(False,),
    ),
    # ---- missing and non-numeric attributes count as 0 ---------------------------------
    Case(
        "a missing version counts as 0: dropped below version 1",
        page=status("Running", v=1),
        arriving=(status("No version", v=None),),
        result=status("Running", v=1),
        applied=(False,),
    ),
    Case(
        "a page element without a version is replaced by version 0",
        page=status("Rendered", v=None),
        arriving=(status("Version 0", v=0),),
        result=status("Version 0", v=0),
        applied=(True,),
    ),
    Case(
        "a non-numeric version counts as 0: dropped below version 1",
        page=status("Running", v=1),
        arriving=(status("Version zz", v="zz"),),
        result=status("Running", v=1),
        applied=(False,),
    ),
    Case(
        "a non-numeric version in the page counts as 0: version 1 replaces it",
        page=status("Version abc", v="abc"),
        arriving=(status("Running", v=1),),
        result=status("Running", v=1),
        applied=(True,),
    ),
    Case(
        "a version with text after its digits is not a number: it counts as 0",
        page=status("Running", v=1),
        arriving=(status("Version 2x", v="2x"),),
        result=status("Running", v=1),
        applied=(False,),
    ),
    Case(
        "a missing attempt in the page counts as 0: attempt 1 replaces it",
        page=status("No attempt", v=9, attempt=None),
        arriving=(status("Running", v=1, attempt=1),),
        result=status("Running", v=1, attempt=1),
        applied=(True,),
    ),
    Case(
        "a non-numeric attempt counts as 0: dropped below attempt 1",
        page=status("Running", v=1),
        arriving=(status("Attempt two", v=9, attempt="two"),),
        result=status("Running", v=1),
        applied=(False,),
    ),
    Case(
        "a line without a seq counts as seq 0: it goes first",
        page=log((1, 2)),
        arriving=(log(body=_NO_SEQ, v=2),),
        result=log(body=_NO_SEQ + line(1) + line(2), v=2),
        applied=(True,),
    ),
    # ---- rule 4: log appends ----------------------------------------------------------
    Case(
        "appended lines go after the others and the log takes their version",
        page=log((1, 2, 3)),
        arriving=(log((4, 5), v=3),),
        result=log((1, 2, 3, 4, 5), v=3),
        applied=(True,),
    ),
    Case(
        "an append of a lower version is dropped",
        page=log((1, 2, 3), v=4),
        arriving=(log((4,), v=3),),
        result=log((1, 2, 3), v=4),
        applied=(False,),
    ),
    Case(
        "a terminal append outranks a higher live version, and the log keeps the larger",
        page=log((1, 2, 3), v=9),
        arriving=(log((4,), v=5, terminal=True),),
        result=log((1, 2, 3, 4), v=9, terminal=True),
        applied=(True,),
    ),
    Case(
        "after a terminal append, live appends of the attempt are dropped",
        page=log((1, 2, 3)),
        arriving=(log((4,), v=2, terminal=True), log((5,), v=3)),
        result=log((1, 2, 3, 4), v=2, terminal=True),
        applied=(True, False),
    ),
    Case(
        "a re-delivered line is not duplicated",
        page=log((1, 2, 3)),
        arriving=(log((3, 4), v=2),),
        result=log((1, 2, 3, 4), v=2),
        applied=(True,),
    ),
    Case(
        "a re-delivered line with new content replaces itself in place",
        page=log((1, 2, 3), v=2),
        arriving=(log(body=_EDITED, v=2),),
        result=log(body=line(1) + _EDITED + line(3), v=2),
        applied=(True,),
    ),
    Case(
        "an append of lines the log already holds changes nothing",
        page=log((1, 2, 3), v=2),
        arriving=(log((3,), v=2),),
        result=log((1, 2, 3), v=2),
        applied=(False,),
    ),
    Case(
        "a late line goes to its place by seq, not to the end",
        page=log((1, 2, 5), log_max=10),
        arriving=(log((3,), v=2), log((4, 0), v=2)),
        result=log((0, 1, 2, 3, 4, 5), v=2, log_max=10),
        applied=(True, True),
    ),
    Case(
        "the log keeps its newest lines, as many as its log max",
        page=log((1, 2, 3)),
        arriving=(log((4, 5, 6, 7, 8), v=2),),
        result=log((4, 5, 6, 7, 8), v=2),
        applied=(True,),
    ),
    Case(
        "an old line older than the kept tail is trimmed at once: nothing changes",
        page=log((4, 5, 6), v=3, log_max=3),
        arriving=(log((2,), v=3),),
        result=log((4, 5, 6), v=3, log_max=3),
        applied=(False,),
    ),
    Case(
        "an old line older than the kept tail is trimmed, the log takes the version",
        page=log((4, 5, 6), v=3, log_max=3),
        arriving=(log((2,), v=4),),
        result=log((4, 5, 6), v=4, log_max=3),
        applied=(True,),
    ),
    Case(
        "old lines re-delivered after newer ones are trimmed again",
        page=log((4, 5, 6), v=3, log_max=3),
        arriving=(log((7,), v=4), log((1, 2, 3), v=5)),
        result=log((5, 6, 7), v=5, log_max=3),
        applied=(True, True),
    ),
    Case(
        "the log max is the page's, not the append's",
        page=log((1, 2, 3), log_max=3),
        arriving=(log((4,), v=2, log_max=10),),
        result=log((2, 3, 4), v=2, log_max=3),
        applied=(True,),
    ),
    Case(
        "a log without a log max keeps every line",
        page=log((1, 2, 3), log_max=None),
        arriving=(log((4, 5, 6, 7, 8, 9), v=2),),
        result=log((1, 2, 3, 4, 5, 6, 7, 8, 9), v=2, log_max=None),
        applied=(True,),
    ),
    Case(
        "a log max that is not a whole number limits nothing",
        page=log((1, 2, 3), log_max="many"),
        arriving=(log((4, 5, 6, 7, 8, 9), v=2),),
        result=log((1, 2, 3, 4, 5, 6, 7, 8, 9), v=2, log_max="many"),
        applied=(True,),
    ),
    Case(
        "a log max of 0 keeps no line",
        page=log((), log_max=0),
        arriving=(log((1, 2), v=2),),
        result=log((), v=2, log_max=0),
        applied=(True,),
    ),
    Case(
        "an append of a newer attempt empties the log first and takes its version",
        page=log((1, 2, 3), v=5),
        arriving=(log(body=line(1, "again 1"), v=1, attempt=2),),
        result=log(body=line(1, "again 1"), v=1, attempt=2),
        applied=(True,),
    ),
    Case(
        "an append of an older attempt is dropped",
        page=log((1,), v=1, attempt=2),
        arriving=(log((5,), v=9, attempt=1),),
        result=log((1,), v=1, attempt=2),
        applied=(False,),
    ),
    Case(
        "a whole log replace (hx-swap-oob true) replaces the log",
        page=log((1, 2, 3), v=2),
        arriving=(log((2, 3, 4), v=3, oob="true", **_DONE),),
        result=log((2, 3, 4), v=3, oob="true", **_DONE),
        applied=(True,),
    ),
    Case(
        "appends after a whole log replace go on from it",
        page=log((1, 2, 3)),
        arriving=(log((4, 5), v=2, oob="true"), log((6,), v=3)),
        result=log((4, 5, 6), v=3, oob="true"),
        applied=(True, True),
    ),
    Case(
        "lines without an id are placed by seq, never taken for one another",
        page=log(body=line(1, name="") + line(2)),
        arriving=(log(body=line(3, name=""), v=2),),
        result=log(body=line(1, name="") + line(2) + line(3, name=""), v=2),
        applied=(True,),
    ),
    # ---- rule 6: what is never applied ------------------------------------------------
    Case(
        "an element whose id is not in the page is ignored",
        page=None,
        arriving=(status("Running", v=2),),
        result=None,
        applied=(False,),
    ),
    Case(
        "the connection region belongs to the client",
        page=None,
        arriving=(f'<p id="{rid("connection")}" class="liveops-connection">Hacked</p>',),
        result=CONNECTION,
        applied=(False,),
    ),
    Case(
        "the container itself is never replaced",
        page=status("Running", v=2),
        arriving=(f'<section id="liveop-{PK}" {A["op"]}="{TOKEN}">Gone</section>',),
        result=status("Running", v=2),
        applied=(False,),
        target=rid("status"),
    ),
)

assert len({case.name for case in CASES}) == len(CASES), "two cases of the same name"
