"""Names the server and ``liveops.js`` share on the wire (see docs/protocol.md)."""

from __future__ import annotations

__all__ = ["WEBSOCKET_PATH"]

#: Where the client connects, below the site's script prefix.
WEBSOCKET_PATH = "ws/liveops/"
