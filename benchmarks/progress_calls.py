"""Worker cost of the progress API, and messages sent, for one in-process run.

    .venv/bin/python benchmarks/progress_calls.py

Runs a real operation through ``execute()`` (test settings: SQLite, in-memory layer,
no viewer) that calls each progress method 100,000 times, five rounds each, and
prints the median cost per call and how many channel messages the run sent.
The full suite against the peer package comes with the performance issue.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CALLS = 100_000
ROUNDS = 5


def main() -> None:
    """Measure and print the table."""
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["LIVEOPS_TEST_DB"] = os.path.join(tempfile.mkdtemp(), "bench.sqlite3")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from tests.testapp.models import Scripted

    from liveops.execution import execute
    from liveops.publish import LiveChannel

    call_command("migrate", run_syncdb=True, verbosity=0)
    owner = get_user_model().objects.create_user("bench")
    medians: dict[str, float] = {}
    channels: list[LiveChannel] = []
    real_finish = LiveChannel.finish

    def finish(self: LiveChannel) -> None:
        channels.append(self)
        real_finish(self)

    LiveChannel.finish = finish  # type: ignore[method-assign]

    def timed(name: str, run_once: Callable[[], None]) -> None:
        samples = []
        for _ in range(ROUNDS):
            begun = time.perf_counter_ns()
            run_once()
            samples.append((time.perf_counter_ns() - begun) / CALLS)
        medians[name] = statistics.median(samples)

    def work(p: Any) -> None:
        def percent() -> None:
            for i in range(CALLS):
                p.percent(i % 100)

        def status() -> None:
            for _ in range(CALLS):
                p.status("working")

        def log() -> None:
            for _ in range(CALLS):
                p.log("a line")

        def track() -> None:
            for _ in p.track(range(CALLS)):
                pass

        for name, calls in [("percent", percent), ("status", status), ("log", log)]:
            timed(name, calls)
        timed("track (one item)", track)

    op = Scripted.objects.create(owner=owner)
    Scripted.SCRIPTS[op.pk] = [work]
    begun = time.monotonic()
    execute(op.live_label(), op.pk)
    elapsed = time.monotonic() - begun
    print(f"{'call':<18} {'median ns/call':>15}")
    for name, value in medians.items():
        print(f"{name:<18} {value:>15,.0f}")
    sent = channels[0].messages_sent
    bound = elapsed * 10 + 2
    print(f"\nmessages sent: {sent} in {elapsed:.1f} s at THROTTLE_HZ=10 (bound {bound:.0f})")


if __name__ == "__main__":
    main()
