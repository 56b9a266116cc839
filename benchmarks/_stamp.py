"""Stamp what our publisher sends, so a measuring client can tell which send it holds.

``install()`` wraps ``liveops._publish.Publisher.send``, the one place every live
message of every layer (in-memory included) goes through. Each message gets a
hidden element ``<i hidden data-bench="SEQ T"></i>`` in its HTML: SEQ counts the
sends of this process, T is ``time.monotonic()`` just before the send (one clock
for every process on this machine). ``liveops.js`` ignores the element (it names no
region on the page), so the frame stays a valid liveops frame. ``read()`` finds the
stamp in a received frame without decoding it.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

_STAMP = re.compile(rb'data-bench=\\"(\d+) ([0-9.]+)\\"')


def element(seq: int, sent_at: float) -> str:
    """Return the hidden element that carries a stamp."""
    return f'<i hidden data-bench="{seq} {sent_at:.6f}"></i>'


def stamped(message: dict[str, Any], seq: int) -> dict[str, Any]:
    """Return ``message`` with a stamp added to the HTML it carries."""
    mark = element(seq, time.monotonic())
    if "parts" in message:
        return {**message, "parts": {**message["parts"], "bench": mark}}
    frame = json.loads(message["frame"])
    frame["liveop_html"] += mark
    return {**message, "frame": json.dumps(frame, ensure_ascii=False)}


def install() -> list[int]:
    """Stamp every message this process publishes; return the list of their sizes."""
    from liveops._publish import Publisher

    sizes: list[int] = []
    original = Publisher.send

    async def send(self: Publisher, group: str, message: dict[str, Any]) -> None:
        message = stamped(message, len(sizes))
        sizes.append(len(json.dumps(message, ensure_ascii=False)))
        await original(self, group, message)

    Publisher.send = send  # type: ignore[method-assign]
    return sizes


def read(payload: bytes | str) -> tuple[int, float] | None:
    """Return (seq, send time) of the stamp in a received frame, or None (a snapshot)."""
    if isinstance(payload, str):
        payload = payload.encode()
    match = _STAMP.search(payload)
    return None if match is None else (int(match[1]), float(match[2]))
