"""The thread runner: a bounded pool in the web process (the embedded default)."""

from __future__ import annotations

import logging
import queue
import threading
from uuid import UUID

from django.db import close_old_connections, connections

from liveops._conf import get_settings
from liveops._execution import execute
from liveops.runners import Runner

__all__ = ["ThreadRunner"]

logger = logging.getLogger("liveops")


class ThreadRunner(Runner):
    """Run operations in ``THREAD_WORKERS`` threads; more wait their turn in a queue.

    The threads are daemons, so a server that is asked to stop does not wait for
    long operations: at exit, the heartbeat's exit hook ends the operations still
    running here as interrupted, and their viewers see it.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, UUID | str]] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"liveops-run-{n}", daemon=True)
            for n in range(get_settings().THREAD_WORKERS)
        ]
        for thread in self._threads:
            thread.start()

    def enqueue(self, label: str, pk: UUID | str) -> None:
        """Queue the operation for the next free thread."""
        self._queue.put((label, pk))

    def _work(self) -> None:
        while True:
            label, pk = self._queue.get()
            close_old_connections()
            try:
                execute(label, pk)
            except Exception:
                logger.exception("liveops: running %s %s failed outside run()", label, pk)
            finally:
                connections.close_all()  # this thread's connections only
