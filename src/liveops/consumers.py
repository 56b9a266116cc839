"""``LiveOperationConsumer``: one WebSocket per page, carrying every operation and list on it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
import weakref
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser

from liveops import _grants as grants
from liveops._conf import get_settings, report_missing_layer
from liveops._fanout import Viewer, get_hub
from liveops._fragments import render_regions
from liveops._liveness import ensure_fresh, expire_stale_among, watchdog
from liveops._publish import bind_server_loop, group_name
from liveops._updates import Update, frame
from liveops.lists import list_group_for, page_rows, render_row
from liveops.models import LiveOperation, get_operation_model

__all__ = ["CloseCode", "LiveOperationConsumer"]

logger = logging.getLogger("liveops")

_TOKEN = re.compile(r"^(?P<label>[a-z0-9_]{1,100}\.[a-z0-9_]{1,100}):(?P<pk>[0-9a-fA-F-]{32,36})$")
#: ``list=<label>:<page>:<per_page>``, the page from 1.
_LIST = re.compile(
    r"^(?P<label>[a-z0-9_]{1,100}\.[a-z0-9_]{1,100}):(?P<page>[1-9][0-9]{0,5}):(?P<per_page>[0-9]{1,3})$"
)


class CloseCode:
    """The consumer's WebSocket close codes: after a 44xx the client stops retrying.

    All are in 4000-4999, the range for applications, which every ASGI server sends as
    given (daphne refuses 1011, leaving the socket open).
    """

    BAD_REQUEST = 4400
    LOGIN_REQUIRED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    #: The server is not set up for live updates (no channel layer); its log says why.
    NOT_CONFIGURED = 4500
    #: The channel layer failed (an outage), or the server is stopping: the page
    #: reconnects and reloads the state.
    TRY_AGAIN = 4503


_REASONS = {
    CloseCode.LOGIN_REQUIRED: "login required",
    CloseCode.FORBIDDEN: "not allowed",
    CloseCode.NOT_FOUND: "not found",
}

#: Operations shown unfinished in a socket's lists: (model, pk) pairs the watchdog looks after.
_Rows = list[tuple[type[LiveOperation], Any]]


@dataclass(frozen=True)
class _Request:
    """One operation a socket asked for, its label resolved to its model and group."""

    token: str
    group: str
    pk: uuid.UUID
    model: type[LiveOperation]
    grant: str = field(default="", compare=False)


@dataclass(frozen=True)
class _ListRequest:
    """One page of an operations list a socket asked for (``liveops.lists``)."""

    token: str
    page: int
    per_page: int
    model: type[LiveOperation]


@dataclass
class _Asked:
    """What one socket asked for: the operations and lists it may get, and those refused."""

    operations: list[_Request] = field(default_factory=list)
    lists: list[_ListRequest] = field(default_factory=list)
    #: The close code of each refused token, by kind: the operations' first, then the lists'.
    refused: dict[str, dict[str, int]] = field(default_factory=lambda: {"op": {}, "list": {}})

    def codes(self) -> list[int]:
        return [code for tokens in self.refused.values() for code in tokens.values()]


class LiveOperationConsumer(AsyncWebsocketConsumer):
    """Authorize, subscribe, send a snapshot per operation, then let the hub send updates.

    The socket has no channel of its own: the process's ``Hub`` receives each
    update once and writes it to every socket watching (``liveops._fanout``).
    """

    #: More operations than this on one socket is refused as a bad request.
    max_operations = 50
    #: More lists than this on one socket, or more rows than this per list, too.
    max_lists = 5
    max_per_page = 100
    #: An alias no project configures: Channels then gives the consumer no channel.
    channel_layer_alias = "liveops.fanout-hub-instead"

    async def connect(self) -> None:
        """Check every requested operation and list; send each allowed one's current state."""
        bind_server_loop(asyncio.get_running_loop())
        self._groups: dict[str, _Request] = {}
        self._list_groups: set[str] = set()
        self._watched_rows: _Rows = []
        settings = get_settings()
        layer = get_channel_layer(settings.CHANNEL_LAYER)
        if layer is None:
            # Accept, then close with a code the page explains: a failed handshake would
            # have it reconnect forever, with nothing in the page or the log to say why.
            report_missing_layer(settings.CHANNEL_LAYER)
            await self.accept()
            await self.close(code=CloseCode.NOT_CONFIGURED)
            return
        self._hub = get_hub(layer, settings.CHANNEL_LAYER)
        await self.accept()
        asked = self._parse_query()
        if asked is None:
            await self.close(code=CloseCode.BAD_REQUEST)
            return
        await self._identify(asked, settings.GRANT_SECONDS)
        # Subscribe before reading the database, so no update falls between the two.
        if not await self._subscribe(asked):
            return
        snapshots = await self._load_operations(asked)
        if not self._groups and not self._list_groups:
            await self.close(code=min(asked.codes(), default=CloseCode.BAD_REQUEST))
            return
        await self._send_snapshots(asked, snapshots)

    def _parse_query(self) -> _Asked | None:
        """Parse the ``op=`` and ``list=`` values; None when any is malformed, or none is there."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        asked, operations, lists = _Asked(), query.get("op", []), query.get("list", [])
        if not (self._parse_operations(operations, asked) and self._parse_lists(lists, asked)):
            return None
        return asked if asked.operations or asked.lists or asked.codes() else None

    async def _identify(self, asked: _Asked, max_age: float) -> None:
        """Check the view grants and load the user only when needed; lists need a logged-in one."""
        key = grants.session_key_of(self.scope)
        checked = [(r, grants.check(r.grant, r.token, key, max_age)) for r in asked.operations]
        self._granted = {request: grant for request, grant in checked if grant is not None}
        # Only operations without a valid grant, and lists, need the user (two queries).
        needs_user = len(self._granted) < len(asked.operations) or bool(asked.lists)
        self._user = await self._scope_user() if needs_user else AnonymousUser()
        self._staff = bool(getattr(self._user, "is_staff", False)) or any(
            granted.staff for granted in self._granted.values()
        )
        # Updates go straight to the server's send: the frame's event is built once
        # per update and process, and Channels' send() would wrap each in two more calls.
        self._viewer = Viewer(self.base_send, staff=self._staff, on_failure=self._layer_failed)
        if asked.lists and not self._user.is_authenticated:
            for request in asked.lists:
                asked.refused["list"][request.token] = CloseCode.LOGIN_REQUIRED
            asked.lists = []

    async def _subscribe(self, asked: _Asked) -> bool:
        """Join each operation's and list's group; if the layer fails, close (4503) and say so."""
        list_groups = await self._choose_list_groups(asked.lists) if asked.lists else []
        try:
            for request in asked.operations:
                await self._join(request)
            for group in dict.fromkeys(list_groups):  # two lists may share one
                await self._hub.subscribe(group, self._viewer)
                self._list_groups.add(group)
        except Exception as exc:  # the layer is unreachable: the page retries later
            logger.warning("liveops could not subscribe a socket: %r", exc)
            await self.close(code=CloseCode.TRY_AGAIN)
            return False
        return True

    async def _load_operations(self, asked: _Asked) -> list[str]:
        """Render the snapshot of each operation the user may see; leave the others' groups."""
        snapshots, refused = await self._load_snapshots(asked.operations)
        for request, code in refused.items():
            asked.refused["op"][request.token] = code
            if request.group in self._groups:
                await self._leave(request)
        return snapshots

    async def _send_snapshots(self, asked: _Asked, snapshots: list[str]) -> None:
        """Send each refusal, then the operations' and the lists' snapshots, then updates."""
        for key, tokens in asked.refused.items():
            for token, code in tokens.items():
                await self.send_json_rejection(token, code, key=key)
        list_snapshots, self._watched_rows = await self._load_lists(asked.lists)
        for model, pk in self._watched_rows:
            watchdog.watch(model, pk)  # a lost run ends within a beat, a long wait is flagged
        # Known to a stopping server before the first frame: a page that holds its snapshot
        # must get the end the stop gives its runs, however soon the stop comes.
        self._gone, self._stopping = asyncio.Event(), False
        _open_sockets.add(self)
        for html in snapshots + list_snapshots:
            if self._stopping:
                return  # the socket is closing, with the state as the stop left it
            await self.send(text_data=frame(html))
        self._viewer.release()  # updates that came meanwhile follow the snapshot

    async def disconnect(self, code: int) -> None:
        """Leave every group this socket joined."""
        _open_sockets.discard(self)
        if gone := getattr(self, "_gone", None):
            gone.set()
        viewer = getattr(self, "_viewer", None)
        if viewer is not None:
            viewer.close()
        for request in list(getattr(self, "_groups", {}).values()):
            await self._leave(request)
        for group in getattr(self, "_list_groups", ()):
            await self._hub.unsubscribe(group, self._viewer)
        for model, pk in getattr(self, "_watched_rows", ()):
            watchdog.unwatch(model, pk)

    async def _join(self, request: _Request) -> None:
        """Subscribe to the operation's group, and have the watchdog look after it."""
        await self._hub.subscribe(request.group, self._viewer)
        self._groups[request.group] = request
        watchdog.watch(request.model, request.pk)

    async def _leave(self, request: _Request) -> None:
        await self._hub.unsubscribe(request.group, self._viewer)
        del self._groups[request.group]
        watchdog.unwatch(request.model, request.pk)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Ignore whatever the client sends: the protocol has nothing to say upstream."""

    async def _show_then_close(self, updates: Mapping[str, Update]) -> None:
        """Write the updates of the operations this socket watches, then close it (4503)."""
        self._stopping = True
        for group in self._groups.keys() & updates.keys():
            update = updates[group]
            await self.send(text_data=update.staff_frame if self._staff else update.frame)
        await self.close(code=CloseCode.TRY_AGAIN)
        # Until the page answers the close: a server that dropped the connection sooner
        # could reset it, and the page would lose the frames still in its buffer.
        await asyncio.wait_for(self._gone.wait(), CLOSE_TIMEOUT)

    def _layer_failed(self) -> None:
        """The channel layer failed: close, so the page reconnects and reloads the state."""
        self._closing = asyncio.ensure_future(self.close(code=CloseCode.TRY_AGAIN))

    async def send_json_rejection(self, token: str, code: int, key: str = "op") -> None:
        """Tell the client this socket will not carry ``token`` (an op, or a list), and why."""
        payload = {key: token, "code": code, "reason": _REASONS.get(code, "rejected")}
        await self.send(text_data=json.dumps({"liveop_rejected": payload}))

    # --- helpers -------------------------------------------------------------------

    async def _scope_user(self) -> Any:
        """Return the socket's user: from AuthMiddleware, else from the session, else anonymous."""
        user: Any = self.scope.get("user")
        if user is None and "session" in self.scope:
            user = await get_user(self.scope)
        return user or AnonymousUser()

    def _parse_operations(self, values: list[str], asked: _Asked) -> bool:
        """Add each ``op=<label>:<pk>[~<grant>]`` to ``asked``; False when any is malformed."""
        grants_by_token: dict[str, str] = {}
        for value in values:
            token, _, grant = value.partition("~")
            grants_by_token.setdefault(token, grant)
        if len(grants_by_token) > self.max_operations:
            return False
        for token, grant in grants_by_token.items():
            match = _TOKEN.match(token)
            if match is None:
                return False
            try:
                pk = uuid.UUID(match["pk"])
            except ValueError:
                return False
            if (model := _find_model(match["label"])) is None:
                asked.refused["op"][token] = CloseCode.NOT_FOUND
            else:
                group = group_name(match["label"], pk)
                asked.operations.append(_Request(token, group, pk, model, grant))
        return True

    def _parse_lists(self, values: list[str], asked: _Asked) -> bool:
        """Add each ``list=<label>:<page>:<per_page>`` to ``asked``; False when any is malformed."""
        specs = list(dict.fromkeys(values))
        if len(specs) > self.max_lists:
            return False
        for spec in specs:
            match = _LIST.match(spec)
            if match is None or not 1 <= int(match["per_page"]) <= self.max_per_page:
                return False
            if (model := _find_model(match["label"])) is None:
                asked.refused["list"][spec] = CloseCode.NOT_FOUND
            else:
                page, per_page = int(match["page"]), int(match["per_page"])
                asked.lists.append(_ListRequest(spec, page, per_page, model))
        return True

    @database_sync_to_async
    def _choose_list_groups(self, lists: list[_ListRequest]) -> list[str]:
        """Pick each list's group: every row, or the user's own (``viewable_by`` may query)."""
        return [list_group_for(request.model, self._user) for request in lists]

    @database_sync_to_async
    def _load_lists(self, lists: list[_ListRequest]) -> tuple[list[str], _Rows]:
        """Render each page's rows (a query each, lost runs ended first); list the unfinished."""
        frames: list[str] = []
        unfinished: _Rows = []
        for request in lists:
            ops = page_rows(request.model, self._user, request.page, request.per_page)
            if expire_stale_among(request.model, ops):  # a lost run is shown as such
                ops = page_rows(request.model, self._user, request.page, request.per_page)
            unfinished += [(request.model, op.pk) for op in ops if not op.get_state().is_terminal]
            if ops:
                frames.append("".join(render_row(op) for op in ops))
        return frames, unfinished

    @database_sync_to_async
    def _load_snapshots(self, requests: list[_Request]) -> tuple[list[str], dict[_Request, int]]:
        """Load each operation (one query per model), authorize, and render its snapshot."""
        by_model: dict[type[LiveOperation], list[_Request]] = defaultdict(list)
        for request in requests:
            by_model[request.model].append(request)
        staff, log_max = self._staff, get_settings().LOG_TAIL
        snapshots: list[str] = []
        rejected: dict[_Request, int] = {}
        for model, wanted in by_model.items():
            found = model._default_manager.in_bulk([request.pk for request in wanted])
            for request in wanted:
                if (op := found.get(request.pk)) is not None:
                    op = ensure_fresh(op)  # a lost run is shown as such (no query otherwise)
                if op is None:
                    rejected[request] = CloseCode.NOT_FOUND
                elif request not in self._granted and not op.can_view(self._user):
                    login = not self._user.is_authenticated
                    rejected[request] = CloseCode.LOGIN_REQUIRED if login else CloseCode.FORBIDDEN
                else:
                    snapshots.append(render_regions(op, op.to_view(), staff=staff, log_max=log_max))
        return snapshots, rejected


#: How long a stopping server waits for a page to answer its close.
CLOSE_TIMEOUT = 2.0
#: The sockets of this process that have their snapshots, for a server that stops.
_open_sockets: weakref.WeakSet[LiveOperationConsumer] = weakref.WeakSet()


async def show_then_close_local_sockets(updates: Mapping[str, Update]) -> None:
    """Write each update to the sockets here that watch its group, then close every socket.

    A stopping server (``liveops.asgi``) calls it before it would close them itself, so
    its pages get how their runs ended, then reconnect (to it once it is back).
    """
    sockets = list(_open_sockets)
    results = await asyncio.gather(
        *(socket._show_then_close(updates) for socket in sockets), return_exceptions=True
    )
    for result in results:
        if isinstance(result, Exception):  # it went away, or did not answer the close
            logger.debug("liveops could not tell a socket the server stops: %r", result)


def _find_model(label: str) -> type[LiveOperation] | None:
    """Return the operation type ``label`` names, or None."""
    try:
        return get_operation_model(label)
    except LookupError:
        return None
