"""``LiveOperationConsumer``: one WebSocket per page, carrying every operation and list on it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser

from liveops import grants
from liveops.conf import get_settings, report_missing_layer
from liveops.fanout import Viewer, get_hub
from liveops.fragments import frame, render_regions
from liveops.lists import list_group_for, page_rows, render_row
from liveops.liveness import ensure_fresh, expire_stale_among, watchdog
from liveops.models import LiveOperation, get_operation_model
from liveops.publish import bind_server_loop, group_name
from liveops.state import Phase

__all__ = ["CloseCode", "LiveOperationConsumer"]

logger = logging.getLogger("liveops")

_TOKEN = re.compile(r"^(?P<label>[a-z0-9_]{1,100}\.[a-z0-9_]{1,100}):(?P<pk>[0-9a-fA-F-]{32,36})$")
#: ``list=<label>:<page>:<per_page>``, the page from 1.
_LIST = re.compile(
    r"^(?P<label>[a-z0-9_]{1,100}\.[a-z0-9_]{1,100}):(?P<page>[1-9][0-9]{0,5}):(?P<per_page>[0-9]{1,3})$"
)


class CloseCode:
    """WebSocket close codes after which the client stops retrying."""

    BAD_REQUEST = 4400
    LOGIN_REQUIRED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    #: The server is not set up for live updates (no channel layer); its log says why.
    NOT_CONFIGURED = 4500


#: The standard "internal error" code: not final, the page reconnects.
_TRY_AGAIN = 1011

_REASONS = {
    CloseCode.LOGIN_REQUIRED: "login required",
    CloseCode.FORBIDDEN: "not allowed",
    CloseCode.NOT_FOUND: "not found",
}


@dataclass(frozen=True)
class _Request:
    """One operation a socket asked for; ``model`` is None when the label names none."""

    token: str
    label: str
    pk: uuid.UUID
    model: type[LiveOperation] | None
    grant: str = field(default="", compare=False)

    @property
    def group(self) -> str:
        return group_name(self.label, self.pk)


@dataclass(frozen=True)
class _ListRequest:
    """One page of an operations list a socket asked for (``liveops.lists``)."""

    spec: str
    label: str
    page: int
    per_page: int
    model: type[LiveOperation] | None = None


class LiveOperationConsumer(AsyncWebsocketConsumer):
    """Authorize, subscribe, send a snapshot per operation, then let the hub send updates.

    The socket has no channel of its own: the process's ``Hub`` receives each
    update once and writes it to every socket watching (``liveops.fanout``).
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
        self._watched_rows: list[tuple[type[LiveOperation], Any]] = []
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
        requests, list_requests = self._parse_requests(), self._parse_lists()
        if requests is None or list_requests is None or not (requests or list_requests):
            await self.close(code=CloseCode.BAD_REQUEST)
            return
        known, rejected = _resolve(requests)
        lists, rejected_lists = _resolve(list_requests)
        self._granted = self._check_grants(known, settings.GRANT_SECONDS)
        # Only operations without a valid grant, and lists, need the user (two queries).
        needs_user = len(self._granted) < len(known) or bool(lists)
        self._user = await self._scope_user() if needs_user else AnonymousUser()
        self._staff = bool(getattr(self._user, "is_staff", False)) or any(
            granted.staff for granted in self._granted.values()
        )
        # Updates go straight to the server's send: the frame's event is built once
        # per update and process, and Channels' send() would wrap each in two more calls.
        self._viewer = Viewer(self.base_send, staff=self._staff, on_failure=self._layer_failed)
        if lists and not self._user.is_authenticated:
            rejected_lists.update(dict.fromkeys(lists, CloseCode.LOGIN_REQUIRED))
            lists = []
        list_groups = await self._choose_list_groups(lists) if lists else {}
        # Subscribe before reading the database, so no update falls between the two.
        try:
            for request in known:
                await self._join(request)
            for group in list_groups.values():
                if group not in self._list_groups:
                    await self._hub.subscribe(group, self._viewer)
                    self._list_groups.add(group)
        except Exception as exc:  # the layer is unreachable: the page retries later
            logger.warning("liveops could not subscribe a socket: %r", exc)
            await self.close(code=_TRY_AGAIN)
            return
        snapshots, refused = await self._load_snapshots(known)
        rejected.update(refused)
        for request in rejected:
            if request.group in self._groups:
                await self._leave(request)
        if not self._groups and not self._list_groups:
            codes = [*rejected.values(), *rejected_lists.values()]
            await self.close(code=min(codes, default=CloseCode.BAD_REQUEST))
            return
        for request, code in rejected.items():
            await self.send_json_rejection(request.token, code)
        for list_request, code in rejected_lists.items():
            await self.send_json_rejection(list_request.spec, code, key="list")
        list_snapshots, self._watched_rows = await self._load_lists(lists)
        for model, pk in self._watched_rows:
            watchdog.watch(model, pk)  # rows shown running: a lost run ends within a beat
        snapshots += list_snapshots
        for html in snapshots:
            await self.send(text_data=frame(html))
        self._viewer.release()  # updates that came meanwhile follow the snapshot

    async def disconnect(self, code: int) -> None:
        """Leave every group this socket joined."""
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
        assert request.model is not None
        await self._hub.subscribe(request.group, self._viewer)
        self._groups[request.group] = request
        watchdog.watch(request.model, request.pk)

    async def _leave(self, request: _Request) -> None:
        assert request.model is not None
        await self._hub.unsubscribe(request.group, self._viewer)
        del self._groups[request.group]
        watchdog.unwatch(request.model, request.pk)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Ignore whatever the client sends: the protocol has nothing to say upstream."""

    def _layer_failed(self) -> None:
        """The channel layer failed: close, so the page reconnects and reloads the state."""
        self._closing = asyncio.ensure_future(self.close(code=_TRY_AGAIN))

    async def send_json_rejection(self, token: str, code: int, key: str = "op") -> None:
        """Tell the client this socket will not carry ``token`` (an op, or a list), and why."""
        payload = {key: token, "code": code, "reason": _REASONS.get(code, "rejected")}
        await self.send(text_data=json.dumps({"liveop_rejected": payload}))

    # --- helpers -------------------------------------------------------------------

    def _check_grants(
        self, requests: list[_Request], max_age: float
    ) -> dict[_Request, grants.Grant]:
        session_key = grants.session_key_of(self.scope)
        checked = {r: grants.check(r.grant, r.token, session_key, max_age) for r in requests}
        return {request: grant for request, grant in checked.items() if grant is not None}

    async def _scope_user(self) -> Any:
        """Return the socket's user: from AuthMiddleware, else from the session, else anonymous."""
        user: Any = self.scope.get("user")
        if user is None and "session" in self.scope:
            user = await get_user(self.scope)
        return user or AnonymousUser()

    def _parse_requests(self) -> list[_Request] | None:
        """Parse ``op=<label>:<pk>[~<grant>]`` values; None when any is malformed."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        grants_by_token: dict[str, str] = {}
        for value in query.get("op", []):
            token, _, grant = value.partition("~")
            grants_by_token.setdefault(token, grant)
        if len(grants_by_token) > self.max_operations:
            return None
        parsed = []
        for token, grant in grants_by_token.items():
            match = _TOKEN.match(token)
            if match is None:
                return None
            try:
                pk = uuid.UUID(match["pk"])
            except ValueError:
                return None
            parsed.append(_Request(token, match["label"], pk, None, grant))
        return parsed

    def _parse_lists(self) -> list[_ListRequest] | None:
        """Parse ``list=<label>:<page>:<per_page>`` values; None when any is malformed."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        specs = list(dict.fromkeys(query.get("list", [])))
        if len(specs) > self.max_lists:
            return None
        parsed = []
        for spec in specs:
            match = _LIST.match(spec)
            if match is None or not 1 <= int(match["per_page"]) <= self.max_per_page:
                return None
            parsed.append(
                _ListRequest(spec, match["label"], int(match["page"]), int(match["per_page"]))
            )
        return parsed

    @database_sync_to_async
    def _choose_list_groups(self, lists: list[_ListRequest]) -> dict[_ListRequest, str]:
        """Pick each list's group: every row, or the user's own (``viewable_by`` may query)."""
        return {request: list_group_for(_model(request), self._user) for request in lists}

    @database_sync_to_async
    def _load_lists(
        self, lists: list[_ListRequest]
    ) -> tuple[list[str], list[tuple[type[LiveOperation], Any]]]:
        """Render each list page's rows (one query each), its lost runs ended first.

        Return the snapshot frames' HTML and the operations shown running.
        """
        frames: list[str] = []
        running: list[tuple[type[LiveOperation], Any]] = []
        for request in lists:
            model = _model(request)
            ops = page_rows(model, self._user, request.page, request.per_page)
            if expire_stale_among(model, ops):  # a lost run is shown as such
                ops = page_rows(model, self._user, request.page, request.per_page)
            running += [(model, op.pk) for op in ops if op.get_state() is Phase.STARTED]
            if ops:
                frames.append("".join(render_row(op) for op in ops))
        return frames, running

    @database_sync_to_async
    def _load_snapshots(self, requests: list[_Request]) -> tuple[list[str], dict[_Request, int]]:
        """Load each operation (one query per model), authorize, and render its snapshot."""
        by_model: dict[type[LiveOperation], list[_Request]] = defaultdict(list)
        for request in requests:
            if request.model is not None:
                by_model[request.model].append(request)
        log_max = get_settings().LOG_TAIL
        snapshots: list[str] = []
        rejected: dict[_Request, int] = {}
        for model, wanted in by_model.items():
            found = model._default_manager.in_bulk([request.pk for request in wanted])
            for request in wanted:
                op = found.get(request.pk)
                if op is not None:
                    op = ensure_fresh(op)  # a lost run is shown as such (no query otherwise)
                if op is None:
                    rejected[request] = CloseCode.NOT_FOUND
                elif request not in self._granted and not op.can_view(self._user):
                    authenticated = self._user.is_authenticated
                    rejected[request] = (
                        CloseCode.FORBIDDEN if authenticated else CloseCode.LOGIN_REQUIRED
                    )
                else:
                    snapshots.append(
                        render_regions(op, op.to_view(), staff=self._staff, log_max=log_max)
                    )
        return snapshots, rejected


_Resolvable = TypeVar("_Resolvable", _Request, _ListRequest)


def _resolve(requests: list[_Resolvable]) -> tuple[list[_Resolvable], dict[_Resolvable, int]]:
    """Attach each request's model; one whose label names no operation type is 4404."""
    known: list[_Resolvable] = []
    rejected: dict[_Resolvable, int] = {}
    for request in requests:
        try:
            known.append(replace(request, model=get_operation_model(request.label)))
        except LookupError:
            rejected[request] = CloseCode.NOT_FOUND
    return known, rejected


def _model(request: _ListRequest) -> type[LiveOperation]:
    assert request.model is not None
    return request.model
