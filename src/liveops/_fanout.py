"""Fan-out near the socket floor: one subscription per server process, one slot per socket.

A stock Channels consumer gives every socket a channel of its own: the layer
copies each message once per viewer, and each copy is decoded, dispatched
(with a database-connection cleanup) and serialized again. Here a ``Hub`` per
event loop and channel layer holds the process's only channel, joins each
operation's group once however many sockets watch it, decodes each message once,
and hands the same serialized frame to every watching ``Viewer``.

A ``Viewer`` never queues. While its socket is still busy with the previous frame,
newer updates are merged into one pending update per operation
(``Update.merged``), so a slow reader gets fewer, newer frames, memory stays
bounded, and the last frame it gets holds the final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from channels.layers import BaseChannelLayer

from liveops._updates import Update

logger = logging.getLogger("liveops")

#: The socket's ASGI ``send``.
SendEvent = Callable[[Any], Awaitable[None]]

#: At most this many joins and leaves in flight per hub. Each holds a pooled Redis
#: connection, and redis-py 8 pools refuse the 101st by default: a reconnect storm
#: over many operations would otherwise fail in ``group_add``.
MEMBERSHIP_CONCURRENCY = 32
#: The hub hands the event loop back after writing to this many sockets.
YIELD_EVERY = 256


def _start(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Start ``coroutine`` as a task that runs at once, up to its first real wait.

    A frame written to a socket with room in its buffer never waits, so on 3.12+
    the common case costs no trip through the event loop.
    """
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coroutine, loop=loop, eager_start=True)
    return loop.create_task(coroutine)


class Viewer:
    """One socket: the frames still to write to it, at most one update per operation."""

    def __init__(self, send: SendEvent, *, staff: bool, on_failure: Callable[[], object]) -> None:
        self._send = send
        self._staff = staff
        self._on_failure = on_failure
        self._pending: dict[str, Update] = {}
        # Held until ``release()``: the snapshot is written first, updates wait here.
        self._writing = True
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def offer(self, update: Update) -> None:
        """Write ``update`` now, or merge it into what waits for this socket."""
        if self._closed:
            return
        if self._writing:
            older = self._pending.get(update.group)
            self._pending[update.group] = update if older is None else older.merged(update)
            return
        self._writing = True
        self._task = _start(self._write(update.send_event(self._staff)))

    def release(self) -> None:
        """Let updates through, starting with any that arrived while the snapshot loaded."""
        self._writing = False
        if self._pending and not self._closed:
            self._writing = True
            self._task = _start(self._write(None))

    def close(self) -> None:
        """Drop whatever waits; write nothing more."""
        self._closed = True
        self._pending.clear()

    def fail(self) -> None:
        """The updates stopped coming (the layer failed): close, and tell the socket's owner."""
        self.close()
        self._on_failure()

    @property
    def pending(self) -> int:
        """How many operations have an update waiting for this socket."""
        return len(self._pending)

    async def _write(self, event: dict[str, Any] | None) -> None:
        try:
            if event is not None:
                await self._send(event)
            while self._pending and not self._closed:
                group = next(iter(self._pending))
                await self._send(self._pending.pop(group).send_event(self._staff))
        except Exception as exc:  # the socket is gone; its consumer will leave the hub
            logger.debug("liveops stopped writing to a socket: %r", exc)
            self.close()
        finally:
            self._writing = False


class Hub:
    """The process's one channel on one layer, and the sockets watching each group."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self._layer = layer
        self._channel: str | None = None
        self._receiving: asyncio.Task[None] | None = None
        # A group is joined on the layer exactly while some socket here watches it.
        self._viewers: dict[str, set[Viewer]] = {}
        # Joining and leaving one group are serialized, so a leave cannot undo a later join.
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: defaultdict[str, int] = defaultdict(int)
        self._layer_calls = asyncio.Semaphore(MEMBERSHIP_CONCURRENCY)
        self._channel_lock = asyncio.Lock()
        self._due: dict[str, Update] = {}
        self._delivering: asyncio.Task[None] | None = None

    async def subscribe(self, group: str, viewer: Viewer) -> None:
        """Deliver ``group``'s updates to ``viewer``; return once the layer has the group."""
        async with self._group_lock(group):
            if group not in self._viewers:
                channel = await self._channel_name()
                async with self._layer_calls:
                    await self._layer.group_add(group, channel)
                self._viewers[group] = set()
            self._viewers[group].add(viewer)

    async def unsubscribe(self, group: str, viewer: Viewer) -> None:
        """Stop delivering ``group`` to ``viewer``; leave the group when nobody watches it."""
        async with self._group_lock(group):
            viewers = self._viewers.get(group)
            if viewers is None or viewer not in viewers:
                return
            viewers.discard(viewer)
            if viewers:
                return
            del self._viewers[group]
            if self._channel is not None:
                try:
                    async with self._layer_calls:
                        await self._layer.group_discard(group, self._channel)
                except Exception as exc:  # the group expires on its own on the layer
                    logger.warning("liveops could not leave %s: %r", group, exc)

    def watchers(self, group: str) -> int:
        """How many sockets of this process watch ``group``."""
        return len(self._viewers.get(group, ()))

    @property
    def groups(self) -> frozenset[str]:
        """The groups this process has joined on the layer."""
        return frozenset(self._viewers)

    def deliver(self, message: dict[str, Any]) -> None:
        """Hand one layer message to every socket watching its group (soon, not now).

        Updates wait in one slot per group until the delivery task reaches them, and
        merge there: when a process has more sockets than it can write between two
        updates, each pass writes the newest state, so lag stays bounded by one pass
        instead of growing with a backlog.
        """
        try:
            update = Update.from_message(message)
        except ValueError as exc:
            logger.warning("liveops ignored a message on its channel: %s", exc)
            return
        if update.group not in self._viewers:
            return
        older = self._due.get(update.group)
        self._due[update.group] = update if older is None else older.merged(update)
        if self._delivering is None:
            self._delivering = asyncio.get_running_loop().create_task(self._deliver_due())

    async def _deliver_due(self) -> None:
        try:
            while self._due:
                group = next(iter(self._due))
                update = self._due.pop(group)
                for count, viewer in enumerate(tuple(self._viewers.get(group, ())), 1):
                    viewer.offer(update)
                    if count % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # let the server read, accept and receive meanwhile
        finally:
            self._delivering = None

    # --- the channel -----------------------------------------------------------------

    async def _channel_name(self) -> str:
        async with self._channel_lock:  # two first subscribers must not open two channels
            if self._channel is None:
                channel = await self._layer.new_channel()
                self._receiving = asyncio.get_running_loop().create_task(
                    self._receive(channel), name="liveops-hub"
                )
                self._channel = channel
            return self._channel

    async def _receive(self, channel: str) -> None:
        while True:
            try:
                message = await self._layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("liveops lost its channel layer: %r", exc)
                self._fail()
                return
            self.deliver(message)

    def _fail(self) -> None:
        """Forget every subscription and drop every socket: they reconnect and reload state.

        Updates sent while the layer was unreachable are lost to this process; a
        reconnecting page gets a fresh snapshot from the database instead.
        """
        viewers = {viewer for group in self._viewers.values() for viewer in group}
        self._channel = None
        self._receiving = None
        self._viewers.clear()
        self._due.clear()
        for viewer in viewers:
            viewer.fail()

    @contextlib.asynccontextmanager
    async def _group_lock(self, group: str) -> AsyncIterator[None]:
        """Hold ``group``'s lock; forget the lock once nobody holds or waits for it."""
        self._lock_users[group] += 1
        lock = self._locks.setdefault(group, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            self._lock_users[group] -= 1
            if not self._lock_users[group]:
                del self._lock_users[group], self._locks[group]


_hubs: dict[tuple[asyncio.AbstractEventLoop, str], Hub] = {}


def get_hub(layer: BaseChannelLayer, alias: str) -> Hub:
    """Return the hub of the running event loop for the layer named ``alias``."""
    loop = asyncio.get_running_loop()
    for key in [key for key in _hubs if key[0].is_closed()]:
        del _hubs[key]  # test runs and reloads leave closed loops behind
    hub = _hubs.get((loop, alias))
    if hub is None:
        hub = _hubs[(loop, alias)] = Hub(layer)
    return hub
