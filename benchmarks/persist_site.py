"""The site and worker ``persist.py`` measures: ``connect_site`` on PostgreSQL, with or without
stored live progress.

As ``DJANGO_SETTINGS_MODULE=persist_site``: ``connect_site``'s settings (this package's
side, Redis core layer, ``THROTTLE_HZ`` 10), with the database on PostgreSQL
(``LIVEOPS_BENCH_PG_NAME`` on ``LIVEOPS_BENCH_PG_HOST``:``LIVEOPS_BENCH_PG_PORT``, a
database ``persist.py`` creates for the run), ``PERSIST_PROGRESS`` on when
``LIVEOPS_BENCH_PERSIST=1`` and, with ``LIVEOPS_BENCH_CAPACITY``, that ``capacity`` of
the layer (channels_redis's default: 100 messages a channel). The server is ``connect_site``'s
(``uvicorn --factory connect_site:ready_application``) and so is ``setup N``.

As a script, ``python persist_site.py worker`` reads commands (JSON, one a line) on
stdin and answers each on stdout (``connect_site.Worker`` talks to it). Every SQL
statement of the process is recorded (``connect_site.count_queries``), so each answer
says how many UPDATEs of the operations' table ran, and how many of them were the
progress writer's (its conditional UPDATE is the only one with ``version <``):

- ``{"mode": "calls", "pk": ..., "seconds": S}``: ``percent``, ``status``, ``log`` and
  one ``track`` item, each called in a tight loop for S seconds inside one ``run()``,
  every call timed on its own (``perf_counter_ns`` around it); per method the
  call durations' percentiles and the CPU the publisher and progress-writer threads
  used meanwhile (``time.pthread_getcpuclockid``: each thread's own clock, read from
  ``run()``'s thread);
- ``{"mode": "burst", "pk": ..., "lines": N}``: N log lines and N tracked items as fast
  as possible;
- ``{"mode": "full", "pk": ..., "seconds": S}``: percent, status and a new log line in a
  tight loop for S seconds, while a thread of its own reads the stored row every
  0.5 s (how many log lines it lags, how many it holds);
- ``{"mode": "many", "pks": [...], "plans": [...]}``: every operation at once, each in
  a thread of its own (started 10 ms apart) setting each planned percent (and a log
  line) at its time, as ``freshness.py`` does for one; answers each call's
  ``time.monotonic()``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import connect_site
from connect_site import *  # noqa: F403  (the settings this module extends)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("LIVEOPS_BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("LIVEOPS_BENCH_PG_PORT", "5432"),
        "USER": os.environ.get("LIVEOPS_BENCH_PG_USER", "postgres"),
        "NAME": os.environ.get("LIVEOPS_BENCH_PG_NAME", "liveops_bench_persist"),
    }
}
# As tests/settings_pg.py: every table from the models at once (tests.testapp has no
# migrations and points at auth_user, which PostgreSQL would refuse otherwise).
MIGRATION_MODULES = {"auth": None, "contenttypes": None, "sessions": None}
LIVEOPS = {
    **connect_site.LIVEOPS,
    "PERSIST_PROGRESS": os.environ.get("LIVEOPS_BENCH_PERSIST") == "1",
}
if os.environ.get("LIVEOPS_BENCH_CAPACITY"):  # channels_redis drops what a full channel gets
    CHANNEL_LAYERS = {
        "default": {
            **connect_site.CHANNEL_LAYERS["default"],
            "CONFIG": {
                **connect_site.CHANNEL_LAYERS["default"]["CONFIG"],
                "capacity": int(os.environ["LIVEOPS_BENCH_CAPACITY"]),
            },
        }
    }
# A project always has one: the list rows link to the operation's page.
ROOT_URLCONF = "liveops.urls"

#: The threads of the engine that do a flush's work off run()'s thread.
ENGINE_THREADS = ("liveops-publisher", "liveops-progress-writer")
#: The many-operations run starts one operation this often (seconds).
START_EVERY = 0.01
#: Calls timed between two looks at the clock.
CHUNK = 20_000


def engine_cpu() -> float:
    """Return the CPU seconds the publisher and progress-writer threads used so far."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name in ENGINE_THREADS and thread.ident is not None:
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


def updates(since: int) -> dict[str, int]:
    """Count the UPDATEs of the operations' table since statement ``since``."""
    from tests.testapp.models import Scripted

    head = f'UPDATE "{Scripted._meta.db_table}"'
    issued = [sql for sql in connect_site.QUERIES[since:] if sql.startswith(head)]
    return {
        "updates": len(issued),
        "writer": sum('."version" < ' in sql for sql in issued),
        "batches": sum(
            "FOR NO KEY UPDATE SKIP LOCKED" in sql or "FOR UPDATE SKIP LOCKED" in sql
            for sql in connect_site.QUERIES[since:]
        ),
    }


def percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    n = len(ordered)
    return {
        "n": n,
        "p50": ordered[n // 2],
        "p99": ordered[min(n - 1, int(0.99 * n))],
        "p999": ordered[min(n - 1, int(0.999 * n))],
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def _timed(p: Any, method: str, seconds: float) -> list[int]:
    """Call ``method`` in a tight loop for ``seconds``; return each call's nanoseconds."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    add = samples.append
    begun = time.monotonic()
    while time.monotonic() - begun < seconds:
        if method == "percent":
            for i in range(CHUNK):
                t = clock()
                p.percent(i % 100)
                add(clock() - t)
        elif method == "status":
            for _ in range(CHUNK):
                t = clock()
                p.status("working")
                add(clock() - t)
        elif method == "log":
            for _ in range(CHUNK):
                t = clock()
                p.log("a line")
                add(clock() - t)
        elif method == "track":
            items = iter(p.track(range(CHUNK + 1)))
            for _ in range(CHUNK):
                t = clock()
                next(items)
                add(clock() - t)
        else:  # the timer alone
            for _ in range(CHUNK):
                t = clock()
                add(clock() - t)
    return samples


def _calls(pk: str, seconds: float) -> dict[str, Any]:
    answer: dict[str, Any] = {}

    def step(p: Any) -> None:
        for method in ("timer", "percent", "status", "log", "track"):
            _timed(p, method, 0.05)  # warm-up
        time.sleep(0.5)  # the writer (on) has connected and stored the warm-up's picture
        for method in ("timer", "percent", "status", "log", "track"):
            since, cpu, begun = len(connect_site.QUERIES), engine_cpu(), time.monotonic()
            samples = _timed(p, method, seconds)
            wall = time.monotonic() - begun
            answer[method] = {
                **percentiles(samples),
                **updates(since),
                "seconds": wall,
                "engine_cpu": engine_cpu() - cpu,
            }

    connect_site._run_operation(pk, step)
    return answer


def _measured(pk: str, step: Callable[[Any], None]) -> dict[str, Any]:
    """Run ``pk`` with ``step``; answer its time, its UPDATEs, the engine's CPU and its row."""
    from tests.testapp.models import Scripted

    since, cpu, begun = len(connect_site.QUERIES), engine_cpu(), time.monotonic()
    connect_site._run_operation(pk, step)
    seconds = time.monotonic() - begun
    time.sleep(0.3)  # a write still in flight lands in the count
    row = Scripted._default_manager.get(pk=uuid.UUID(pk))
    return {
        **updates(since),
        "seconds": seconds,
        "engine_cpu": engine_cpu() - cpu,
        "stored_lines": len(row.log),
        "stored_seq": row.log_seq,
        "version": row.version,
    }


def _burst(pk: str, lines: int) -> dict[str, Any]:
    def many(p: Any) -> None:
        for i in range(lines):
            p.log(f"line {i}")
        for _ in p.track(range(lines)):
            pass

    return _measured(pk, many)


def _full(pk: str, seconds: float) -> dict[str, Any]:
    from django.db import connections
    from tests.testapp.models import Scripted

    written = [0]
    done = threading.Event()
    lag: list[int] = []
    held: list[int] = []

    def sample() -> None:
        rows = Scripted._default_manager.filter(pk=uuid.UUID(pk))
        try:
            while not done.wait(0.5):  # a look at the row every half second
                live = written[0]
                stored = rows.values("log_seq", "log", "started_on").get()
                if stored["started_on"] is not None and live:
                    lag.append(live - stored["log_seq"])
                    held.append(len(stored["log"]))
        finally:
            connections.close_all()  # this thread's only

    def loop(p: Any) -> None:
        n = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
            p.percent(n % 100)
            p.status(f"row {n}")
            p.log(f"row {n} imported")
            written[0] = n
        done.set()  # looks at the row end with the loop, before the end is stored

    sampler = threading.Thread(target=sample, name="bench-sampler")
    sampler.start()
    try:
        answer = _measured(pk, loop)
    finally:
        done.set()
        sampler.join()
    answer["lines"] = written[0]
    answer["lag"] = lag
    answer["held"] = held
    return answer


def _many(pks: list[str], plans: list[list[list[float]]]) -> dict[str, Any]:
    from django.db import connections

    calls: list[list[tuple[int, float]]] = [[] for _ in pks]

    def body(i: int) -> Callable[[Any], None]:
        def step(p: Any) -> None:
            # PostgreSQL here takes 100 connections: the run gives its thread's back (the
            # claim is committed) and opens one again for its end.
            connections.close_all()
            begun = time.monotonic()
            for value, at in plans[i]:
                delay = begun + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                calls[i].append((int(value), time.monotonic()))
                p.percent(int(value))
                p.log(f"value {int(value)} reached")
            time.sleep(0.3)  # the last value goes out live, not only in the end
            p.result(updates=len(plans[i]))

        return step

    since, cpu, begun = len(connect_site.QUERIES), engine_cpu(), time.monotonic()
    threads = [
        threading.Thread(target=connect_site._run_closing, args=(pk, body(i)), daemon=True)
        for i, pk in enumerate(pks)
    ]
    for thread in threads:
        thread.start()
        # Each claim takes a connection until run() gives it back: a start every 10 ms
        # keeps them under PostgreSQL's 100 connections.
        time.sleep(START_EVERY)
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - begun
    time.sleep(0.3)  # a write still in flight lands in the count
    return {
        **updates(since),
        "seconds": seconds,
        "engine_cpu": engine_cpu() - cpu,
        "calls": calls,
    }


def _perform(command: dict[str, Any]) -> dict[str, Any]:
    mode = command["mode"]
    if mode == "ping":  # set up, ready: what comes next is measured
        return {}
    if mode == "calls":
        return _calls(command["pk"], command["seconds"])
    if mode == "burst":
        return _burst(command["pk"], command["lines"])
    if mode == "full":
        return _full(command["pk"], command["seconds"])
    if mode == "many":
        return _many(command["pks"], command["plans"])
    raise ValueError(f"unknown command {mode!r}")


def main(argv: list[str]) -> None:
    """Run ``worker`` (see the module docstring)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "persist_site")
    import django

    django.setup()
    if argv != ["worker"]:
        raise SystemExit("usage: persist_site.py worker")
    connect_site.install_commit_clock()
    connect_site.count_queries()
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_perform(json.loads(line))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
