"""The thread runner: a bounded pool in the web process (the embedded default)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from django.db import close_old_connections, connections

from liveops.conf import get_settings
from liveops.execution import execute
from liveops.runners import Runner

__all__ = ["ThreadRunner"]

logger = logging.getLogger("liveops")


class ThreadRunner(Runner):
    """Run operations in a pool of ``THREAD_WORKERS`` threads; more wait their turn."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=get_settings().THREAD_WORKERS, thread_name_prefix="liveops-run"
        )

    def enqueue(self, label: str, pk: UUID | str) -> None:
        """Queue the operation for the next free thread."""
        self._pool.submit(_execute_in_thread, label, pk)

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; with ``wait``, let running operations finish."""
        self._pool.shutdown(wait=wait)


def _execute_in_thread(label: str, pk: UUID | str) -> None:
    close_old_connections()
    try:
        execute(label, pk)
    except Exception:
        logger.exception("liveops: running %s %s failed outside run()", label, pk)
    finally:
        connections.close_all()  # this thread's connections only
