"""The publisher: turns live state into coalesced channel-layer messages off ``run()``'s thread.

One daemon thread per process runs an event loop that renders and sends. Each
running operation has a ``LiveChannel``: a change to its state schedules one
flush, no sooner than ``1/THROTTLE_HZ`` after the previous one, and the flush
sends whatever the state holds by then. So the message rate is bounded, and the
latest state always goes out within one interval.

Terminal state is held back until the database transaction that stored it has
committed; ``LiveChannel.finish()`` then sends it at once. An operation that stores its
progress (``PERSIST_PROGRESS``) has each flush stored the same way before it is sent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer

from liveops._conf import get_settings, report_missing_layer
from liveops._state import LiveState, StateView
from liveops._updates import Update

logger = logging.getLogger("liveops")

#: How long a send may take before the publisher gives up on that message.
SEND_TIMEOUT = 2.0
#: How long the worker waits for the terminal message before moving on.
FINISH_TIMEOUT = 5.0

#: Small regions every message carries, so a viewer who joined mid-run (and got a
#: snapshot without live figures) is complete after the next message.
STEADY_REGIONS = frozenset({"status", "progress", "stages"})
#: A running operation that sent nothing for this long sends its steady regions again.
KEYFRAME_INTERVAL = 5.0
#: How long a flush waits for its picture to be stored before it is sent all the same.
STORE_WAIT = 0.25
#: Regions the live state never changes: the notice is drawn from the database only.
_STORED_ONLY_REGIONS = frozenset({"notice"})


#: Renders the ``regions`` of a view as one update: ``(view, regions, new_log) -> Update``,
#: where ``new_log`` holds the log lines since the last flush (None: the whole tail).
Render = Callable[[StateView, frozenset[str], tuple[tuple[int, str], ...] | None], Update]


#: Stores a running operation's picture; the future says whether it was committed.
Store = Callable[[StateView], "Future[bool]"]


@dataclass
class _Stored:
    """What the database holds of one run's picture, as far as its channel knows."""

    store: Store
    #: The newest version known to be committed.
    version: int
    #: Writes sent and not yet answered: (version, future).
    waiting: list[tuple[int, Future[bool]]]

    def learn(self) -> None:
        """Take the answers of the writes that have one."""
        for version, future in self.waiting:
            if future.done() and future.result():
                self.version = max(self.version, version)
        self.waiting = [(v, f) for v, f in self.waiting if not f.done()]

    async def store_now(self, view: StateView) -> bool:
        """Store ``view`` unless it is stored; return whether it is, waiting at most STORE_WAIT.

        While an earlier write is still unanswered (a slow or locked database) it does not
        wait: the flush goes out at once and is sent whole.
        """
        self.learn()
        if self.version >= view.version:
            return True
        stuck = bool(self.waiting)
        future = self.store(view)
        self.waiting.append((view.version, future))
        if not stuck:
            await asyncio.wait([asyncio.wrap_future(future)], timeout=STORE_WAIT)
        self.learn()
        return self.version >= view.version


def group_name(label: str, pk: object) -> str:
    """Return the channel-layer group of one operation (ASCII, under 100 characters)."""
    return f"liveop.{label}.{pk}"


class Publisher:
    """Own the background event loop that renders and sends live fragments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server_loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """Return the publisher's event loop, starting its thread on first use."""
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    ready = threading.Event()
                    thread = threading.Thread(
                        target=self._serve, args=(ready,), name="liveops-publisher", daemon=True
                    )
                    thread.start()
                    ready.wait()
        assert self._loop is not None
        return self._loop

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        ready.set()
        loop.run_forever()

    def bind_server_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the server's event loop, which owns an in-memory layer's queues."""
        self._server_loop = loop

    async def send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to ``group`` on the configured layer; never raise."""
        alias = get_settings().CHANNEL_LAYER
        layer = get_channel_layer(alias)
        if layer is None:
            report_missing_layer(alias)  # once: no viewer can be reached without a layer
            return
        try:
            await asyncio.wait_for(self._group_send(layer, group, message), SEND_TIMEOUT)
        except Exception as exc:  # a layer outage must never fail the operation
            logger.warning("liveops could not send to %s: %r", group, exc)

    async def _group_send(
        self, layer: BaseChannelLayer, group: str, message: dict[str, Any]
    ) -> None:
        if isinstance(layer, InMemoryChannelLayer):
            # Its queues belong to the server's loop and are not thread-safe:
            # hand the send to that loop. No server loop means no viewer here.
            server_loop = self._server_loop
            if server_loop is None or server_loop.is_closed():
                return
            future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), server_loop)
            await asyncio.wrap_future(future)
        else:
            await layer.group_send(group, message)

    def channel(
        self, group: str, state: LiveState, render: Render, store: Store | None = None
    ) -> LiveChannel:
        """Return a new channel that publishes ``state`` to ``group``, drawn by ``render``.

        With ``store``, each flush is stored with it before it is sent.
        """
        return LiveChannel(self, group, state, render, store)


class LiveChannel:
    """Coalesce the changes of one operation's state into throttled messages.

    Log lines go out as appends of the lines since the last flush. With a store, a flush
    is sent once its picture is committed, so a viewer who reads the database after it
    has every line up to it and a viewer who read before it gets it live. A flush whose
    picture was not committed in time leaves a gap for a viewer who joins next, so the
    next flush is sent whole: every region, the whole log tail.
    """

    def __init__(
        self,
        publisher: Publisher,
        group: str,
        state: LiveState,
        render: Render,
        store: Store | None = None,
    ) -> None:
        self._publisher = publisher
        self._loop = publisher.loop
        self._group = group
        self._state = state
        self._render = render
        self._interval = get_settings().flush_interval
        self._timer: asyncio.TimerHandle | None = None
        self._keyframe: asyncio.TimerHandle | None = None
        self._flushing = False
        self._send_lock = asyncio.Lock()  # keeps one operation's messages in order
        self._last_sent = float("-inf")
        self._closed = False
        self._stored = _Stored(store, state.version, []) if store is not None else None
        #: Whether the last flush was committed before it was sent (else send the next whole).
        self._gapless = True

    def notify(self) -> None:
        """Tell the channel its state turned dirty (thread-safe, cheap)."""
        self._loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        if self._timer is not None or self._flushing or self._closed:
            return
        delay = max(0.0, self._last_sent + self._interval - self._loop.time())
        self._timer = self._loop.call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        self._flushing = True
        self._loop.create_task(self._flush())

    async def _flush(self, *, terminal: bool = False) -> None:
        async with self._send_lock:
            await self._flush_locked(terminal)

    async def _flush_locked(self, terminal: bool) -> None:
        try:
            changes = self._state.take_changes()
            if changes is None:
                return
            view, regions = changes.view, changes.regions | STEADY_REGIONS
            whole = not self._gapless
            if whole:  # more regions, never fewer: a terminal flush carries the notice too
                regions |= frozenset(self._state.regions) - _STORED_ONLY_REGIONS
            new_log = None if whole or "log" not in regions else changes.new_log
            update = self._render(view, regions, new_log)
            if self._stored is not None and not terminal:  # a terminal view is stored already
                self._gapless = await self._stored.store_now(view)
            self._last_sent = self._loop.time()
            await self._publisher.send(self._group, update.to_message())
        except Exception:
            logger.exception("liveops could not publish to %s", self._group)
        finally:
            self._flushing = False
            if not terminal:
                self._arm_keyframe()
                if self._state.is_dirty:
                    self._schedule()

    def _arm_keyframe(self) -> None:
        if self._keyframe is not None:
            self._keyframe.cancel()
            self._keyframe = None
        # A held state is finishing: its terminal message follows the commit, or
        # (rolled back) never comes; either way there is nothing more to repeat.
        if not self._closed and not self._state.is_held:
            self._keyframe = self._loop.call_later(KEYFRAME_INTERVAL, self._send_keyframe)

    def _send_keyframe(self) -> None:
        self._keyframe = None
        if not self._closed:
            self._state.touch()
            self._schedule()

    def _close(self) -> None:
        for timer in (self._timer, self._keyframe):
            if timer is not None:
                timer.cancel()
        self._timer = self._keyframe = None
        self._closed = True

    async def _finish(self) -> None:
        self._close()
        self._state.release()
        await self._flush(terminal=True)

    def close(self) -> None:
        """Stop publishing without a terminal message (the run could not store its end)."""
        self._loop.call_soon_threadsafe(self._close)

    def finish(self) -> None:
        """Send the terminal state now (see ``await_on_publisher`` for the wait)."""
        await_on_publisher(self._finish(), f"the final update of {self._group}")


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def await_on_publisher(coroutine: Coroutine[Any, Any, None], what: str) -> None:
    """Run ``coroutine`` on the publisher's loop; wait for it, bounded, from plain threads.

    A thread that runs an event loop does not wait: blocking it could block the very
    loop (the publisher's, or the server's for an in-memory layer) that has to deliver.
    """
    future: Future[None] = asyncio.run_coroutine_threadsafe(coroutine, _publisher.loop)
    if _in_event_loop():
        return
    try:
        future.result(FINISH_TIMEOUT)
    except FutureTimeout:
        logger.warning("liveops: %s is late; it is stored all the same.", what)


_publisher = Publisher()


def get_publisher() -> Publisher:
    """Return the process-wide publisher."""
    return _publisher


def bind_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the server's event loop (called by the consumer on connect)."""
    _publisher.bind_server_loop(loop)
