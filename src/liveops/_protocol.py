"""Names the server and ``liveops.js`` share on the wire (see docs/protocol.md)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Where the client connects, below the site's script prefix.
WEBSOCKET_PATH = "ws/liveops/"

#: Every ``data-liveop*`` attribute, by the key ``liveops.js`` knows it by (its ``ATTR``
#: table, which tests/test_wire_contract.py checks against this one).
ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {
        # A container: its operation ("<app_label>.<model_name>:<pk>"), its socket path,
        # its live page (for 0.4's liveop:finished event) and view grant, its connection
        # texts; the connection state and a refusal code the client writes on it (and on
        # a list).
        "op": "data-liveop",
        "ws": "data-liveop-ws",
        "url": "data-liveop-url",
        "grant": "data-liveop-grant",
        "texts": "data-liveop-texts",
        "connection": "data-liveop-connection",
        "rejected": "data-liveop-rejected",
        # DEBUG notices: "liveops.js has not run" (the client removes it), "served over WSGI".
        "script_missing": "data-liveop-script-missing",
        "dev_notice": "data-liveop-dev-notice",
        # The rank of a region or a row (rules 1-3), and the phase it was rendered from.
        "version": "data-liveop-v",
        "attempt": "data-liveop-attempt",
        "terminal": "data-liveop-terminal",
        "state": "data-liveop-state",
        # The log: a line's sequence number, and how many lines the page keeps.
        "seq": "data-liveop-seq",
        "log_max": "data-liveop-log-max",
        # Where a success leads: its Continue link, the next operation of a chain, and
        # the headings the client swaps when it follows the chain in place.
        "continue": "data-liveop-continue",
        "chain": "data-liveop-chain",
        "heading": "data-liveop-heading",
        # An operations list (its label, page, size, whether it gains rows, where it says
        # how its connection is, its empty row) and a row (its label, its sort key).
        "list": "data-liveop-list",
        "list_page": "data-liveop-list-page",
        "list_per_page": "data-liveop-list-per-page",
        "list_insert": "data-liveop-list-insert",
        "list_status": "data-liveop-list-status",
        "list_empty": "data-liveop-list-empty",
        "row": "data-liveop-row",
        "sort": "data-liveop-sort",
        # A row's cells, for stylesheets only: a cell's column name (liveops.css shows it
        # on narrow screens) and the phase of the state cell (a hook for a site's CSS).
        "label": "data-liveop-label",
        "phase": "data-liveop-phase",
    }
)
