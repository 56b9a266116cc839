"""Live updates: the channel-layer message, and merging updates for a socket that lags.

The merge must leave a page exactly as applying every update in turn would; the
page model of tests/dom.py applies frames as liveops.js does.
"""

from __future__ import annotations

import random

import msgpack
import pytest

from liveops._updates import MESSAGE_TYPE, Chunk, Rank, Update
from tests.dom import Page

GROUP = "liveop.testapp.scripted.1"
LOG_MAX = 5


def status(rank: Rank, text: str) -> Chunk:
    terminal = " data-liveop-terminal" if rank.terminal else ""
    return Chunk(
        rank,
        f'<div id="s" hx-swap-oob="true" data-liveop-v="{rank.version}"'
        f' data-liveop-attempt="{rank.attempt}"{terminal}>{text}</div>',
    )


def log(rank: Rank, seqs: range, *, append: bool = True) -> Chunk:
    terminal = " data-liveop-terminal" if rank.terminal else ""
    items = "".join(f'<li id="l-{n}" data-liveop-seq="{n}">line {n}</li>' for n in seqs)
    swap = "beforeend" if append else "true"
    return Chunk(
        rank,
        f'<ol id="l" hx-swap-oob="{swap}" data-liveop-v="{rank.version}"'
        f' data-liveop-attempt="{rank.attempt}" data-liveop-log-max="{LOG_MAX}"{terminal}>'
        f"{items}</ol>",
        append=append,
        lines=len(seqs) if append else 0,
        oldest=seqs[0] if seqs else 0,
        newest=seqs[-1] if seqs else 0,
    )


def update(*chunks: tuple[str, Chunk]) -> Update:
    return Update(GROUP, {name: (chunk,) for name, chunk in chunks}, LOG_MAX)


def blank_page() -> Page:
    return Page.from_html(
        '<div id="s" data-liveop-v="0" data-liveop-attempt="1"></div>'
        f'<ol id="l" data-liveop-v="0" data-liveop-attempt="1" data-liveop-log-max="{LOG_MAX}">'
        "</ol>"
    )


def a_run(rng: random.Random) -> list[Update]:
    """Updates as publishers send them: ticks, an end, sometimes a retry, stray late ticks."""
    updates: list[Update] = []
    attempt, version, seq = 1, 0, 0
    for _ in range(rng.randint(5, 40)):
        roll = rng.random()
        if roll < 0.08:  # an end (from the run, or decided outside it)
            version += 1
            rank = Rank(attempt, True, version)
            tail = range(max(0, seq - LOG_MAX), seq)
            updates.append(
                update(("status", status(rank, "done")), ("log", log(rank, tail, append=False)))
            )
        elif roll < 0.12:  # a retry: a new attempt starts over
            attempt, version, seq = attempt + 1, 1, 0
            rank = Rank(attempt, False, version)
            updates.append(
                update(("status", status(rank, "again")), ("log", log(rank, range(0, 0))))
            )
        elif roll < 0.18 and version > 2:  # a late tick of an older version (a zombie run)
            rank = Rank(attempt, False, version - rng.randint(1, 2))
            updates.append(update(("status", status(rank, "late"))))
        else:
            version += 1
            rank = Rank(attempt, False, version)
            lines = rng.randint(0, 4)
            chunks = [("status", status(rank, f"tick {version}"))]
            if lines:
                chunks.append(("log", log(rank, range(seq, seq + lines))))
                seq += lines
            updates.append(update(*chunks))
    return updates


def frames_of_a_lagging_socket(updates: list[Update], rng: random.Random) -> list[str]:
    """The frames a socket gets when its writes finish at random moments."""
    frames: list[str] = []
    pending: Update | None = None
    for item in updates:
        pending = item if pending is None else pending.merged(item)
        if rng.random() < 0.3:  # the previous write finished: the merged update goes out
            frames.append(pending.frame)
            pending = None
    if pending is not None:
        frames.append(pending.frame)
    return frames


@pytest.mark.parametrize("seed", range(200))
def test_a_merged_update_leaves_the_page_as_every_update_would(seed: int) -> None:
    rng = random.Random(seed)
    updates = a_run(rng)
    every, merged = blank_page(), blank_page()
    for item in updates:
        every.apply_frame(item.frame)
    for text in frames_of_a_lagging_socket(updates, rng):
        merged.apply_frame(text)
    for region in ("s", "l"):
        # Everything the reader sees and every marker alike; only whether the element
        # was swapped in whole (and so carries hx-swap-oob) may differ.
        ignore = ("hx-swap-oob",)
        assert merged.region(region, ignore=ignore) == every.region(region, ignore=ignore)


def test_a_lagging_socket_holds_a_bounded_update_however_many_arrive() -> None:
    pending = update(("status", status(Rank(1, False, 1), "tick 1")))
    for n in range(2, 10_002):
        rank = Rank(1, False, n)
        pending = pending.merged(
            update(("status", status(rank, f"tick {n}")), ("log", log(rank, range(n, n + 1))))
        )
    assert len(pending.regions["status"]) == 1
    # The client keeps the newest LOG_MAX lines: older appends are dropped here already.
    assert sum(chunk.lines for chunk in pending.regions["log"]) == LOG_MAX
    assert "tick 10001" in pending.frame


def test_an_outranked_chunk_does_not_replace_the_one_held() -> None:
    end = update(("status", status(Rank(1, True, 7), "done")))
    late = update(("status", status(Rank(1, False, 9), "late tick")))
    assert "done" in end.merged(late).frame
    assert "late tick" not in end.merged(late).frame


def test_the_message_survives_msgpack_and_decodes_to_the_same_frames() -> None:
    rank = Rank(2, True, 14)
    staff = status(rank, "Failed <pre>Traceback …</pre>")
    original = Update(
        GROUP,
        {
            "status": (Chunk(rank, status(rank, "Failed").html, staff_html=staff.html),),
            "log": (log(rank, range(3), append=False),),
        },
        LOG_MAX,
    )
    message = original.to_message()
    assert message["type"] == MESSAGE_TYPE
    assert message["terminal"] is True
    decoded = Update.from_message(msgpack.unpackb(msgpack.packb(message)))
    assert decoded == original
    assert decoded.frame == original.frame
    assert "Traceback" in decoded.staff_frame
    assert "Traceback" not in decoded.frame


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"type": MESSAGE_TYPE, "group": GROUP},
        {"type": MESSAGE_TYPE, "group": GROUP, "rank": "1,2,3", "parts": {}},
        {"type": MESSAGE_TYPE, "group": GROUP, "rank": [1, 0, 1], "parts": ["<p>"]},
        {"type": MESSAGE_TYPE, "group": GROUP, "rank": [1, 0, "x"], "parts": {}},
    ],
)
def test_anything_else_on_the_channel_is_refused_with_value_error(message: dict) -> None:
    with pytest.raises(ValueError, match="not a live update message"):
        Update.from_message(message)


def test_a_merged_update_is_never_sent_over_the_layer() -> None:
    first = update(("log", log(Rank(1, False, 1), range(0, 1))))
    second = update(("log", log(Rank(1, False, 2), range(1, 2))))
    with pytest.raises(ValueError, match="one chunk per region"):
        first.merged(second).to_message()
