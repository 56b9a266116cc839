"""``LiveOpsLifespan``: a stopping ASGI server ends this process's runs, and its pages see it.

Wrap your ASGI application with it::

    application = LiveOpsLifespan(ProtocolTypeRouter({...}))

When the server is asked to stop (SIGTERM, Ctrl-C), the operations that the
``thread`` runner is running in this process are ended as interrupted; once that is
stored, the sockets of this process are sent those ends and closed with 4503, so
their pages show "Interrupted" (and the others reconnect). Only then does the server
go on with its own shutdown, which would otherwise close the sockets first:

- uvicorn: its signal handler, installed before the lifespan startup, is wrapped then;
- daphne, which sends no lifespan: Twisted's handler, wrapped once its reactor runs;
- hypercorn: its parent stops a worker process by an event, which the worker watches
  from the lifespan startup (hypercorn itself would wait for open WebSockets to go).

The lifespan shutdown, and an exit hook of the heartbeat, still end the runs of a
stop that came another way.

On the ``lifespan`` startup under uvicorn, it logs an error when uvicorn has no
WebSocket library (no system check runs under uvicorn to say so).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from asgiref.sync import sync_to_async

from liveops._liveness import heartbeat
from liveops._receivers import altered_regions, snapshot_update
from liveops._updates import Update
from liveops.consumers import show_then_close_local_sockets
from liveops.models import LiveOperation
from liveops.signals import Transition

__all__ = ["LiveOpsLifespan"]

logger = logging.getLogger("liveops")

Scope = dict[str, Any]

#: What the lifespan startup logs under a uvicorn that cannot speak WebSocket.
UVICORN_WITHOUT_WEBSOCKETS = (
    "uvicorn has no WebSocket library, so live pages cannot connect: "
    "pip install 'uvicorn[standard]' (or django-liveops[server])"
)
#: How long a stopping server waits for its runs' ends to reach its own pages.
STOP_TIMEOUT = 5.0
#: How often a hypercorn worker looks whether its parent stops it (as hypercorn does).
HYPERCORN_POLL_SECONDS = 0.1


def websocket_library() -> str | None:
    """Return the WebSocket library uvicorn would pick ("websockets", "wsproto"), or None."""
    # The order of uvicorn's own choice (uvicorn.protocols.websockets.auto).
    for name in ("websockets", "wsproto"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return name
    return None


class LiveOpsLifespan:
    """ASGI middleware: answer ``lifespan`` events, pass everything else through."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # daphne imports the application before it starts the reactor, which installs
        # its signal handlers: hook the stop on the reactor's first turn.
        reactor = sys.modules.get("twisted.internet.reactor")
        if reactor is not None:
            reactor.callLater(0, _stop_hook.install)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Handle a lifespan scope, or hand the scope to the wrapped application."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if "uvicorn" in sys.modules and websocket_library() is None:
                    logger.error(UVICORN_WITHOUT_WEBSOCKETS)
                _stop_hook.install()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stop_runs_and_tell()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def stop_runs_and_tell() -> None:
    """End this process's runs as interrupted; show the stored ends to its sockets, close them."""
    ended = await sync_to_async(heartbeat.interrupt_all, thread_sensitive=False)()
    updates = await sync_to_async(_render_ends, thread_sensitive=False)(ended)
    await show_then_close_local_sockets(updates)


def _render_ends(ops: list[LiveOperation]) -> dict[str, Update]:
    """Render each operation's interrupted end as stored, by group (as it is published)."""
    updates = (snapshot_update(op, altered_regions(op, Transition.INTERRUPTED)) for op in ops)
    return {update.group: update for update in updates}


class _StopHook:
    """Run ``stop_runs_and_tell()`` once per process, before the server reacts to a stop."""

    def __init__(self) -> None:
        self._installed = False
        self._tasks: set[asyncio.Task[None]] = set()  # held, so none is collected early
        self._stopping = False

    def install(self) -> None:
        """Hook the stop of the server whose loop runs this (in the main thread); once."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self._installed = True
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._wrap(signum, loop)
        event = _hypercorn_shutdown_event()
        if event is not None:
            self._keep(loop.create_task(self._watch(event)))

    def _wrap(self, signum: int, loop: asyncio.AbstractEventLoop) -> None:
        previous = signal.getsignal(signum)
        if previous is None or previous is signal.SIG_IGN:
            return  # the server does not stop on this signal

        def stop_first(sig: int, frame: FrameType | None) -> None:
            hand_on = functools.partial(_hand_on, previous, sig, frame)
            if self._stopping:
                hand_on()  # a second signal (Ctrl-C twice): the server's own answer, now
            else:
                loop.call_soon_threadsafe(self._stop_then, hand_on)

        signal.signal(signum, stop_first)

    async def _watch(self, event: Any) -> None:
        # A multiprocessing event, which no loop can await: poll it, as hypercorn does.
        while not event.is_set():  # noqa: ASYNC110
            await asyncio.sleep(HYPERCORN_POLL_SECONDS)
        self._stop_then(lambda: None)  # hypercorn stops by itself

    def _stop_then(self, hand_on: Callable[[], None]) -> None:
        if self._stopping:
            hand_on()
            return
        self._stopping = True
        self._keep(asyncio.get_running_loop().create_task(self._stop(hand_on)))

    async def _stop(self, hand_on: Callable[[], None]) -> None:
        try:
            await asyncio.wait_for(stop_runs_and_tell(), STOP_TIMEOUT)
        except TimeoutError:
            logger.warning("liveops: the pages of this server were not all told it stops")
        except Exception:
            logger.exception("liveops: could not tell the pages of this server that it stops")
        finally:
            hand_on()

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _hand_on(previous: Any, signum: int, frame: FrameType | None) -> None:
    """Give ``signum`` to the handler that was there before ours, as if it came now."""
    if previous is signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
    else:
        previous(signum, frame)


def _hypercorn_shutdown_event() -> Any:
    """Return the event by which hypercorn's parent stops this worker process, or None."""
    if "hypercorn" not in sys.modules:
        return None
    # hypercorn passes it only to its worker function; the worker's Process object
    # holds the same arguments (multiprocessing has no public way to them).
    arguments = getattr(multiprocessing.current_process(), "_kwargs", None)
    return arguments.get("shutdown_event") if isinstance(arguments, dict) else None


_stop_hook = _StopHook()
