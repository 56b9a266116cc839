"""A live update: the regions one publisher flush sends, and how two updates merge.

The publisher turns each flush into an ``Update`` and sends it over the channel
layer as a plain message (``to_message``). Each server process decodes it once
(``from_message``), serializes its frame once, and hands that same string to every
socket watching the operation.

A socket that cannot keep up does not queue updates: it holds at most one per
operation and merges each newer one into it (``Update.merged``). The merge follows
the rules ``liveops.js`` applies (docs/protocol.md), so applying the merged update
leaves the page exactly as applying both would:

- a region element is dropped by the client when an element it already applied
  outranks it (newer attempt, then terminal, then higher version); so an element
  outranked by one before it is dropped here too;
- a replacing element makes everything before it in that region irrelevant;
- log lines are appended, and the client keeps the newest ``log_max`` of them (by
  sequence number): once the appends held reach ``log_max`` lines, all newer than
  every line before them, those before would be trimmed anyway.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

MESSAGE_TYPE = "liveop.fragment"


def frame(html: str) -> str:
    """Wrap region elements in the JSON envelope sent over the WebSocket."""
    return json.dumps({"liveop_html": html}, ensure_ascii=False)


class Rank(NamedTuple):
    """How ``liveops.js`` orders two elements of one region: the greater one wins."""

    attempt: int
    terminal: bool
    version: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """One region element of one flush; ``append`` marks log lines added to the log.

    A log element says how many ``lines`` it appends and the sequence numbers of the
    oldest and newest line it holds (0 and 0: unknown, so the merge never trims it).
    """

    rank: Rank
    html: str
    staff_html: str | None = None
    append: bool = False
    lines: int = 0
    oldest: int = 0
    newest: int = 0

    def for_viewer(self, staff: bool) -> str:
        return self.staff_html if staff and self.staff_html is not None else self.html


def _compact(chunks: tuple[Chunk, ...], log_max: int) -> tuple[Chunk, ...]:
    """Drop the chunks of one region that cannot change what the client ends with."""
    kept: list[Chunk] = []
    for chunk in chunks:
        if kept and chunk.rank < kept[-1].rank:  # kept ranks never decrease
            continue  # the client would drop it: outranked by an element it applied
        if not chunk.append:
            kept.clear()  # it replaces the region, whatever came before
        kept.append(chunk)
    newest_before = list(itertools.accumulate((chunk.newest for chunk in kept), max))
    appended, oldest_after = 0, math.inf
    for index in range(len(kept) - 1, 0, -1):
        if kept[index].append:
            appended += kept[index].lines
            oldest_after = min(oldest_after, kept[index].oldest)
        # Re-delivered older lines would be trimmed by the client, not what came before.
        if appended >= log_max and oldest_after > newest_before[index - 1]:
            return tuple(kept[index:])
    return tuple(kept)


@dataclass(frozen=True)
class Update:
    """The region elements to send for one operation, in the order they are sent."""

    group: str
    regions: Mapping[str, tuple[Chunk, ...]]
    log_max: int = 200

    def html(self, staff: bool = False) -> str:
        return "".join(
            chunk.for_viewer(staff) for chunks in self.regions.values() for chunk in chunks
        )

    @cached_property
    def frame(self) -> str:
        """The JSON text sent to sockets (serialized once per process and update)."""
        return frame(self.html())

    @cached_property
    def staff_frame(self) -> str:
        if not any(c.staff_html is not None for cs in self.regions.values() for c in cs):
            return self.frame
        return frame(self.html(staff=True))

    @cached_property
    def _send_events(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            {"type": "websocket.send", "text": self.frame},
            {"type": "websocket.send", "text": self.staff_frame},
        )

    def send_event(self, staff: bool) -> dict[str, Any]:
        """The ASGI ``websocket.send`` event of this update's frame, one for every socket."""
        return self._send_events[staff]

    def merged(self, newer: Update) -> Update:
        """Return one update that leaves a page as applying ``self`` then ``newer`` would."""
        regions = dict(self.regions)
        for name, chunks in newer.regions.items():
            regions[name] = _compact(regions.get(name, ()) + chunks, newer.log_max)
        return Update(self.group, regions, newer.log_max)

    # --- over the channel layer (msgpack or in-memory: plain types only) ------------

    def to_message(self) -> dict[str, Any]:
        """Return the channel-layer message for this update (one chunk per region)."""
        ranks = {chunk.rank for chunks in self.regions.values() for chunk in chunks}
        if len(ranks) > 1:
            raise ValueError("a message carries one flush: one chunk per region, one rank")
        rank = ranks.pop() if ranks else Rank(0, False, 0)
        parts, staff_parts, log = {}, {}, None
        for name, (chunk,) in self.regions.items():
            parts[name] = chunk.html
            if chunk.staff_html is not None:
                staff_parts[name] = chunk.staff_html
            if name == "log":
                log = {
                    "append": chunk.append,
                    "lines": chunk.lines,
                    "seqs": [chunk.oldest, chunk.newest],
                    "max": self.log_max,
                }
        message: dict[str, Any] = {
            "type": MESSAGE_TYPE,
            "group": self.group,
            "rank": list(rank),
            "terminal": rank.terminal,
            "parts": parts,
        }
        if staff_parts:
            message["staff_parts"] = staff_parts
        if log is not None:
            message["log"] = log
        return message

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Update:
        """Decode a message made by ``to_message``; raise ValueError for anything else."""
        try:
            attempt, terminal, version = message["rank"]
            rank = Rank(int(attempt), bool(terminal), int(version))
            parts, staff_parts = message["parts"], message.get("staff_parts", {})
            log = message.get("log") or {}
            oldest, newest = log.get("seqs", (0, 0))
            regions = {
                str(name): (
                    Chunk(
                        rank,
                        str(html),
                        staff_parts.get(name),
                        append=name == "log" and bool(log.get("append")),
                        lines=int(log.get("lines", 0)) if name == "log" else 0,
                        oldest=int(oldest) if name == "log" else 0,
                        newest=int(newest) if name == "log" else 0,
                    ),
                )
                for name, html in parts.items()
            }
            return cls(str(message["group"]), regions, int(log.get("max", 200)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a live update message: {exc!r}") from exc
