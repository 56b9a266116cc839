"""Stored live progress (``PERSIST_PROGRESS``, issue 13): its cost, each figure with it off
and on in the same run.

    .venv/bin/python benchmarks/persist.py [--call-seconds 2] [--lines 10000]
        [--full-seconds 30] [--ops 200] [--parts calls burst full many peer]

Everything runs on the real PostgreSQL (``--pg-host``/``--pg-port``, user ``postgres``),
in a database of its own created for the run (``liveops_bench_persist_<pid>``, dropped
at the end), and the Redis core layer on a private ``redis-server``; ``THROTTLE_HZ`` 10,
``LOG_TAIL`` 200. Each part runs with ``PERSIST_PROGRESS`` off, then on, each in a
worker process of its own (``persist_site.py worker``):

- **calls**: ``percent``, ``status``, ``log`` and one ``track`` item, each in a tight loop
  for ``--call-seconds`` inside one ``run()``, every call timed on its own (so the
  figures include one ``perf_counter_ns`` pair: the "timer" row is that alone). Beside
  them, the CPU the publisher and progress-writer threads used meanwhile, per second
  of the operation (each thread's own CPU clock, ``time.pthread_getcpuclockid``).
- **burst**: one operation logs ``--lines`` lines and tracks ``--lines`` items as fast as
  it can; **full**: one operation sets percent and status and logs a new line in a
  tight loop for ``--full-seconds``, while a thread reads its stored row every 0.5 s.
  The UPDATEs of the operations' table are counted in the worker (every statement of
  every connection is recorded; the progress writer's conditional UPDATE is the only
  one with ``version <``), and the stored log is read at the end.
- **many**: ``--ops`` operations at once in one worker process (a thread each), each
  setting ``--values`` percent values at the irregular intervals of ``freshness.plans``
  (seeded, 20-250 ms) times ``--stretch`` (16: 320-4,000 ms, so that 200 operations
  fit one publisher thread on a shared 2-CPU machine; a flush costs it about 3 ms), with
  a log line each, and one WebSocket viewer each on one uvicorn process
  (``freshness.Watch``). PostgreSQL's CPU: the backends of this run's database, read
  from /proc every 0.25 s (a backend seen first during the run counts from zero; what
  a short-lived backend used after its last look is missed, as it is in both modes).
  Rows written: ``pg_stat_user_tables.n_tup_upd`` of the table, read after the worker
  exited (its backends flush their statistics when they end). Freshness as in
  ``freshness.py``: a viewer holding a percent minus the call's ``time.monotonic()``.
- **peer**: django-liveops 0.4.1 (its venv, ``_peer.py``) stores no live progress; a
  run there reads its own row and renders its connect snapshot mid-run, to show it.

Defaults take about 3 minutes. Writes only under a temporary directory (removed at the
end) and in the run's own PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _peer  # noqa: E402
import connect_site  # noqa: E402
import freshness  # noqa: E402
from _net import free_port  # noqa: E402
from _procs import cpu_seconds, raise_fd_limit  # noqa: E402

PARTS = ("calls", "burst", "full", "many", "peer")
MODES = ("off", "on")
METHODS = ("timer", "percent", "status", "log", "track")
THROTTLE_HZ = 10
LOG_TAIL = 200
#: The issue's bound on a progress call with it on.
CALL_TARGET_NS = 5_000
#: Handshakes at once when the viewers connect.
WAVE = 50
TABLE = "testapp_scripted"
# The percent of the progress region (max 100): the stages region has a meter of its own
# since freshness.py's pattern was written, and comes later in a frame.
freshness.PERCENT["ours"] = re.compile(r'<progress\b[^>]*\bmax="100"[^>]*\bvalue="([0-9.]+)"')

#: Run by the peer's python: one operation that reports progress, then, still running,
#: reads its own row from another thread and renders the snapshot a page opened now gets.
PEER_CHECK = r"""
import json, sys, threading
import django
from django.conf import settings

settings.configure(
    SECRET_KEY="liveops-benchmark-not-secret",
    USE_TZ=True,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "channels",
                    "channels_broadcast", "liveops", "peerapp"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    LIVEOPS={"RUNNER": "eager", "THROTTLE_HZ": 10},
    LANGUAGE_CODE="en",
    ROOT_URLCONF="liveops.urls",
)
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from peerapp.models import Bench

call_command("migrate", run_syncdb=True, verbosity=0)
op = Bench.objects.create(owner=get_user_model().objects.create_user("bench"))
seen = {}


def look():  # another connection, as a page's request or a socket's snapshot has
    row = Bench.objects.get(pk=op.pk)
    seen["row"] = {name: getattr(row, name) for name in
                   ("status_text", "percent", "log", "log_seq", "stage_states")}
    seen["snapshot"] = row._render_snapshot_html()
    connections.close_all()


def step(p):
    p.status("working")
    p.percent(40)
    for i in range(3):
        p.log(f"line {i}")
    reader = threading.Thread(target=look)
    reader.start()
    reader.join()


Bench.STEPS[op.pk] = [step]
op.enqueue()
seen["fields"] = [f.name for f in Bench._meta.concrete_fields]
print(json.dumps(seen, default=str))
"""


class Database:
    """This run's PostgreSQL database: created at the start, dropped at the end."""

    def __init__(self, host: str, port: str, name: str) -> None:
        self.host, self.port, self.name = host, port, name
        with psycopg.connect(host=host, port=port, user="postgres", dbname="test") as admin:
            admin.autocommit = True
            admin.execute(f'CREATE DATABASE "{name}"')
        self.conn = psycopg.connect(
            host=host, port=port, user="postgres", dbname=name, autocommit=True
        )
        self.version = str(self.conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

    def rows_updated(self) -> int:
        """Return ``n_tup_upd`` of the operations' table (0 before it exists)."""
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = %s", (TABLE,)
        ).fetchone()
        return int(row[0]) if row else 0

    def backends(self) -> list[int]:
        """Return the pids of the backends connected to this database, but this one's."""
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.name,),
        ).fetchall()
        return [int(pid) for (pid,) in rows]

    def drop(self) -> None:
        self.conn.close()
        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="test"
        ) as admin:
            admin.autocommit = True
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class BackendCpu:
    """The CPU the backends of one database use while it runs, looking every 0.25 s."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.backends = 0
        self._task: asyncio.Task[None] | None = None

    def look(self, *, initial: bool = False) -> None:
        for pid in self.db.backends():
            try:
                now = cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue  # it ended meanwhile
            # One already there counts from now; one that started meanwhile, from zero.
            self.first.setdefault(pid, now if initial else 0.0)
            self.last[pid] = now
        self.backends = max(self.backends, len(self.last))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.look()

    def start(self) -> None:
        self.look(initial=True)
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> float:
        """Stop looking; return the CPU seconds used since ``start``."""
        self.look()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


@dataclass
class ManyOutcome:
    """What the many-operations part measured in one mode."""

    ops: int = 0
    seconds: float = 0.0
    writer: int = 0
    updates: int = 0
    rows_updated: int = 0
    pg_cpu: float = 0.0
    backends: int = 0
    worker_cpu: float = 0.0
    engine_cpu: float = 0.0
    server_cpu: float = 0.0
    fresh_ms: list[float] = field(default_factory=list)
    values: int = 0
    held_by_none: int = 0
    final: int = 0
    broken: int = 0


class Bench:
    """One run: Redis, the database, the operations; a worker per (part, mode)."""

    def __init__(self, args: argparse.Namespace, db: Database) -> None:
        self.args = args
        self.db = db
        self.stack = connect_site.Stack("liveops-persist-")
        self.created: dict[str, Any] = {}

    def env(self, mode: str) -> dict[str, str]:
        env = self.stack.env("ours", "core", f"persist-{mode}")
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "persist_site",
                "LIVEOPS_BENCH_PERSIST": "1" if mode == "on" else "0",
                "LIVEOPS_BENCH_PG_HOST": self.db.host,
                "LIVEOPS_BENCH_PG_PORT": self.db.port,
                "LIVEOPS_BENCH_PG_NAME": self.db.name,
                "LIVEOPS_BENCH_CAPACITY": str(self.args.capacity or ""),
            }
        )
        if self.created:
            env["LIVEOPS_BENCH_OWNER"] = str(self.created["owner"])
            env["LIVEOPS_BENCH_USERNAME"] = self.created["username"]
        return env

    def setup(self) -> None:
        self.stack.start_redis()
        count = 2 * (self.args.rounds + 2 + self.args.ops)
        self.created = self.stack.setup("ours", self.env("off"), count)
        self.free = list(zip(self.created["pks"], self.created["paths"], strict=True))

    def take(self, n: int) -> list[tuple[str, str]]:
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    async def worker(self, mode: str, name: str) -> connect_site.Worker:
        proc = await self.stack.start_piped(
            name, [sys.executable, "persist_site.py", "worker"], self.env(mode), track=False
        )
        return connect_site.Worker(proc)

    async def singles(self) -> dict[str, dict[str, Any]]:
        """Run the calls, burst and full parts asked for, off and on, in a worker each.

        Both workers live through the whole part and take turns (calls: ``--rounds``
        rounds, the order swapped each round), so a machine shared with other work
        slows both alike.
        """
        args = self.args
        answers: dict[str, dict[str, Any]] = {mode: {"calls": []} for mode in MODES}
        workers = {mode: await self.worker(mode, f"worker-{mode}") for mode in MODES}
        try:
            commands = {
                "calls": {"seconds": args.call_seconds},
                "burst": {"lines": args.lines},
                "full": {"seconds": args.full_seconds},
            }
            for part, command in commands.items():
                if part not in args.parts:
                    continue
                for round_ in range(args.rounds if part == "calls" else 1):
                    for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                        ((pk, _path),) = self.take(1)
                        sent = {"mode": part, "pk": pk, **command}
                        answer = await workers[mode].command(sent, 600)
                        if part == "calls":
                            answers[mode]["calls"].append(answer)
                        else:
                            answers[mode][part] = answer
        except Exception as exc:
            logs = "\n".join(self.stack.log(f"worker-{mode}") for mode in MODES)
            raise RuntimeError(f"{exc!r}\n{logs}") from exc
        finally:
            for worker in workers.values():
                await worker.close()
        return answers

    async def many(self, mode: str) -> ManyOutcome:
        """Run ``--ops`` operations at once, one viewer each; measure the database and them."""
        args = self.args
        taken = self.take(args.ops)
        plans = [
            [[value, round(at * args.stretch, 4)] for value, at in plan[: args.values]]
            for plan in freshness.plans(args.ops * freshness.VALUES_PER_OP, args.seed)
        ]
        outcome = ManyOutcome(ops=args.ops)
        env = self.env(mode)
        port = free_port()
        name = f"server-{mode}"
        server = self.stack.start_server("ours", env, port, name)
        try:
            watches = [
                freshness.Watch("ours", f"ws://127.0.0.1:{port}{path}", 1) for _pk, path in taken
            ]
            async with contextlib.AsyncExitStack() as exits:
                for first in range(0, len(watches), WAVE):
                    await asyncio.gather(
                        *(exits.enter_async_context(w) for w in watches[first : first + WAVE])
                    )
                rows_before = self.db.rows_updated()
                backend_cpu = BackendCpu(self.db)
                server_before = cpu_seconds(server.pid)
                worker = await self.worker(mode, f"worker-many-{mode}")
                try:
                    await worker.command({"mode": "ping"}, 60)
                    worker_before = cpu_seconds(worker.proc.pid)
                    backend_cpu.start()
                    command = {"mode": "many", "pks": [pk for pk, _ in taken], "plans": plans}
                    answer = await worker.command(command, 600)
                    outcome.pg_cpu = await backend_cpu.stop()
                    outcome.worker_cpu = cpu_seconds(worker.proc.pid) - worker_before
                    outcome.server_cpu = cpu_seconds(server.pid) - server_before
                    await asyncio.gather(*(w.settle() for w in watches))
                finally:
                    await worker.close()
            await asyncio.sleep(1.0)  # the worker's backends have ended: their statistics are in
            outcome.rows_updated = self.db.rows_updated() - rows_before
        except Exception as exc:
            raise RuntimeError(
                f"many/{mode}: {exc!r}\n--- server:\n{self.stack.log(name)}"
                f"\n--- worker:\n{self.stack.log(f'worker-many-{mode}')}"
            ) from exc
        finally:
            self.stack.stop(server)
        outcome.seconds = answer["seconds"]
        outcome.writer, outcome.updates = answer["writer"], answer["updates"]
        outcome.engine_cpu = answer["engine_cpu"]
        outcome.backends = backend_cpu.backends
        for watch, calls in zip(watches, answer["calls"], strict=True):
            (viewer,) = watch.viewers
            outcome.broken += viewer.closed is not None
            outcome.final += viewer.terminal_at is not None
            for value, called in calls:
                outcome.values += 1
                if value in viewer.seen:
                    outcome.fresh_ms.append((viewer.seen[value] - called) * 1000)
                else:
                    outcome.held_by_none += 1
        return outcome

    def peer(self) -> dict[str, Any]:
        """Run the peer's check in its venv; return its row and snapshot mid-run."""
        script = self.stack.directory / "peer_check.py"
        script.write_text(PEER_CHECK)
        done = subprocess.run(
            [str(_peer.python()), str(script), str(self.stack.directory / "peer.sqlite3")],
            cwd=self.stack.directory,
            env={**os.environ, "PYTHONPATH": str(self.stack.directory)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode:
            raise RuntimeError(f"the peer's check failed:\n{done.stderr[-3000:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- tables ------------------------------------------------------------------------------


def ratio(on: float, off: float) -> str:
    return f"{on / off:.2f}" if off else "—"


def merged(rounds: list[dict[str, Any]], method: str) -> dict[str, Any]:
    """Return one method's figures over the rounds: medians of p50 and p99, totals."""
    of = [r[method] for r in rounds]
    p50s = sorted(r["p50"] for r in of)
    return {
        "p50": statistics.median(p50s),
        "p50_range": (p50s[0], p50s[-1]),
        "p99": statistics.median(r["p99"] for r in of),
        "p999": statistics.median(r["p999"] for r in of),
        "max": max(r["max"] for r in of),
        "n": sum(r["n"] for r in of),
        "cpu": sum(r["engine_cpu"] for r in of) / sum(r["seconds"] for r in of),
        "writes": sum(r["writer"] for r in of) / sum(r["seconds"] for r in of),
    }


def calls_table(results: dict[str, dict[str, Any]], rounds: int) -> Iterator[str]:
    yield (
        f"| call | off: p50 (range of {rounds} rounds) / p99 / p99.9 / max ns | on: the same "
        "| on/off p50, p99 | on: median under 5 µs | publisher + writer CPU per "
        "operation-second, off / on (on/off) | writer's UPDATEs a second, on |"
    )
    yield "|---|---|---|---|---|---|---|"
    for method in METHODS:
        a, b = merged(results["off"]["calls"], method), merged(results["on"]["calls"], method)

        def cell(r: dict[str, Any]) -> str:
            low, high = r["p50_range"]
            return (
                f"{r['p50']:,.0f} ({low:,.0f}-{high:,.0f}) / {r['p99']:,.0f} "
                f"/ {r['p999']:,.0f} / {r['max']:,.0f} ({r['n']:,} calls)"
            )

        label = {"timer": "timer alone", "track": "one `track` item"}.get(method, f"`{method}`")
        meets = "—" if method == "timer" else ("yes" if b["p50"] < CALL_TARGET_NS else "NO")
        yield (
            f"| {label} | {cell(a)} | {cell(b)} "
            f"| {ratio(b['p50'], a['p50'])}, {ratio(b['p99'], a['p99'])} | {meets} "
            f"| {a['cpu'] * 1000:.1f} / {b['cpu'] * 1000:.1f} ms ({ratio(b['cpu'], a['cpu'])}) "
            f"| {b['writes']:.1f} |"
        )


def writes_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> Iterator[str]:
    yield (
        "| run | mode | seconds (run() loops a second) | UPDATEs of the table (the writer's) "
        "| the writer's: a second, bound in all (THROTTLE_HZ x s + 1) | stored at the end: "
        "log lines (LOG_TAIL), last seq | mid-run: lines the row lagged p50 / max (as time), "
        "lines it held max (looks) | publisher + writer CPU per operation-second |"
    )
    yield "|---|---|---|---|---|---|---|---|"
    labels = {
        "burst": f"{args.lines:,} log lines + {args.lines:,} tracked items",
        "full": f"{args.full_seconds:g} s tight loop (percent, status, a new log line)",
    }
    for part, label in labels.items():
        if part not in results["off"]:
            continue
        for mode in MODES:
            r = results[mode][part]
            seconds = f"{r['seconds']:.2f}"
            mid = "—"
            if part == "full":
                seconds += f" ({r['lines'] / r['seconds']:,.0f})"
                lag = sorted(r["lag"])
                if lag:
                    per_ms = r["lines"] / r["seconds"] / 1000  # lines the loop logs a ms
                    p50, top = lag[len(lag) // 2], lag[-1]
                    mid = (
                        f"{p50:,} / {top:,} (~{p50 / per_ms:.0f} / {top / per_ms:.0f} ms), "
                        f"{max(r['held'])} ({len(lag)})"
                    )
            bound = THROTTLE_HZ * r["seconds"] + 1
            yield (
                f"| {label} | {mode} | {seconds} | {r['updates']} ({r['writer']}) "
                f"| {r['writer'] / r['seconds']:.1f}, {r['writer']} ≤ {bound:.0f} "
                f"| {r['stored_lines']} ({LOG_TAIL}), {r['stored_seq']:,} | {mid} "
                f"| {r['engine_cpu'] / r['seconds'] * 1000:.1f} ms |"
            )


def many_table(outcomes: dict[str, ManyOutcome], args: argparse.Namespace) -> Iterator[str]:
    low, high = 20 * args.stretch, 250 * args.stretch
    yield (
        f"| mode | operations at once, {args.values} values each at {low:g}-{high:g} ms (s) "
        "| writer's UPDATEs (a second) | rows updated, n_tup_upd "
        "(a second) | PostgreSQL CPU s (% of a CPU; backends) | worker CPU s (publisher + "
        "writer) | server CPU s | freshness ms p50 / p99 / max (n) | superseded | final state |"
    )
    yield "|---|---|---|---|---|---|---|---|---|---|"
    for mode in MODES:
        o = outcomes.get(mode)
        if o is None:
            continue
        p50, p99, top = freshness.stats(o.fresh_ms)
        broke = f", {o.broken} broke" if o.broken else ""
        yield (
            f"| {mode} | {o.ops} ({o.seconds:.1f}) | {o.writer:,} ({o.writer / o.seconds:.0f}) "
            f"| {o.rows_updated:,} ({o.rows_updated / o.seconds:.0f}) "
            f"| {o.pg_cpu:.2f} ({100 * o.pg_cpu / o.seconds:.0f} %; {o.backends}) "
            f"| {o.worker_cpu:.2f} ({o.engine_cpu:.2f}) | {o.server_cpu:.2f} "
            f"| {p50:.1f} / {p99:.1f} / {top:.1f} ({len(o.fresh_ms):,}) "
            f"| {o.held_by_none} of {o.values:,} | {o.final}/{o.ops}{broke} |"
        )
    if "off" in outcomes and "on" in outcomes:
        a, b = outcomes["off"], outcomes["on"]
        yield (
            f"| on/off | — | — | {ratio(b.rows_updated, a.rows_updated)} "
            f"| {ratio(b.pg_cpu, a.pg_cpu)} | {ratio(b.worker_cpu, a.worker_cpu)} "
            f"| {ratio(b.server_cpu, a.server_cpu)} "
            f"| p99 {ratio(freshness.stats(b.fresh_ms)[1], freshness.stats(a.fresh_ms)[1])} "
            "| — | — |"
        )


def peer_lines(seen: dict[str, Any]) -> Iterator[str]:
    progress = [f for f in seen["fields"] if f in ("status_text", "percent", "log", "log_seq")]
    yield (
        f"peer (django-liveops 0.4.1): its model has {', '.join(progress)}; mid-run, after "
        f"status('working'), percent(40) and three log lines, the row held {seen['row']} "
        f"and the snapshot a page opened then gets is: {seen['snapshot'].strip()!r}"
    )


def main() -> None:
    """Parse the arguments, run every part off and on, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--call-seconds", type=float, default=2.0, help="per method and mode")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--full-seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3, help="calls: rounds per mode")
    parser.add_argument("--ops", type=int, default=200, help="operations at once (many)")
    parser.add_argument("--values", type=int, default=8, help="many: percent values an op")
    parser.add_argument(
        "--stretch",
        type=float,
        default=16.0,
        help="many: freshness.py's intervals (20-250 ms) times this",
    )
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--capacity", type=int, default=0, help="the Redis layer's capacity (0: its default)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs")
    parser.add_argument("--pg-host", default=os.environ.get("LIVEOPS_TEST_PG_HOST", "127.0.0.1"))
    parser.add_argument("--pg-port", default=os.environ.get("LIVEOPS_TEST_PG_PORT", "5432"))
    args = parser.parse_args()
    raise_fd_limit()
    begun = time.monotonic()
    db = Database(args.pg_host, args.pg_port, f"liveops_bench_persist_{os.getpid()}")
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.2f}), "
        f"Python {platform.python_version()}, PostgreSQL {db.version}, THROTTLE_HZ "
        f"{THROTTLE_HZ}, LOG_TAIL {LOG_TAIL}; parts {' '.join(args.parts)}",
        flush=True,
    )
    bench = Bench(args, db)
    singles: dict[str, dict[str, Any]] = {}
    many: dict[str, ManyOutcome] = {}
    seen: dict[str, Any] | None = None
    try:
        bench.setup()
        if {"calls", "burst", "full"} & set(args.parts):
            singles = asyncio.run(bench.singles())
            print("  done: calls, burst, full", file=sys.stderr, flush=True)
        for mode in MODES:
            if "many" in args.parts:
                many[mode] = asyncio.run(bench.many(mode))
                print(f"  done: many, {mode}", file=sys.stderr, flush=True)
        if "peer" in args.parts:
            seen = bench.peer()
    finally:
        bench.stack.close(keep=args.keep)
        db.drop()
    if "calls" in args.parts:
        print("\n".join(calls_table(singles, args.rounds)) + "\n")
    if {"burst", "full"} & set(args.parts):
        print("\n".join(writes_table(singles, args)) + "\n")
    if many:
        print("\n".join(many_table(many, args)) + "\n")
    if seen is not None:
        print("\n".join(peer_lines(seen)))
    print(
        f"\n# {time.monotonic() - begun:.0f} s in all; load average at the end "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
