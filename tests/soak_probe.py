"""A census of a server's or worker's live objects, taken on SIGUSR2 (tests/test_soak.py).

tests.settings_stack installs it when LIVEOPS_TEST_PROBE names a directory. On each
SIGUSR2 the process collects its garbage, counts the objects the collector tracks by
type, and writes ``<directory>/<pid>.json``: ``{"answer": n, "objects": total,
"types": {"module.Type": count}}``, where ``n`` counts the signals answered so far.
Memory figures cannot see a leak of a few objects per operation; this can.

SIGUSR2, because uvicorn and daphne leave it alone and Celery takes SIGUSR1.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType


def install(directory: str) -> None:
    """Answer SIGUSR2 with a census written to ``directory`` (from the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    answered = 0

    def census(signum: int, frame: FrameType | None) -> None:
        nonlocal answered
        answered += 1
        gc.collect()
        types: collections.Counter[str] = collections.Counter(
            f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.get_objects()
        )
        path = Path(directory, f"{os.getpid()}.json")
        partial = path.with_suffix(".partial")
        payload = {"answer": answered, "objects": sum(types.values()), "types": types}
        partial.write_text(json.dumps(payload))
        partial.replace(path)  # the test never reads half a census

    signal.signal(signal.SIGUSR2, census)
