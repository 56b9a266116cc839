"""Connecting: queries and time per WebSocket connect, and a reconnect storm, vs the peer.

    .venv/bin/python benchmarks/connect.py [--connects 300] [--storm-clients 1000]

Runs each case through this package and through django-liveops 0.4.1 (its own venv,
see ``_peer.py``; driven through its documented API: an operation model subclassing
its ``LiveOperation``, ``op.enqueue()`` with its eager runner, its own consumer and
routing), served from ``benchmarks/connect_site.py`` at two routings: **plain**, where
every socket is made the owner without a lookup (like ``layer_site.py``), and
**session**, behind the middleware each package's docs recommend (ours:
``AllowedHostsOriginValidator(AuthMiddlewareStack(...))``; the peer:
``AuthMiddlewareStack(...)``) with the session cookie of the logged-in owner.

- **queries per connect**: every SQL statement the application runs from the
  connect until the client holds the snapshot, counted in one process through an
  execute wrapper on every database connection (any thread), around an asgiref
  ``ApplicationCommunicator`` connect; one warm-up connect first, then
  ``--query-connects``.
- **connect time**: ``--connects`` sequential connects (after 5 unmeasured) to one
  uvicorn process, an operation that has not started, timed at the client from the
  start of the handshake until the snapshot is held (and until the handshake
  completes), for the Redis core layer and the in-memory layer.
- **reconnect storm** (Redis core layer, session routing): ``--storm-clients`` clients
  on one uvicorn process watch running operations (each sets a new percent every
  ``--every`` s in a worker process): all on one operation, or spread over
  ``--storm-ops`` operations. Then the server gets SIGTERM and is started again on
  the same port. Every client reconnects as soon as its socket closes, and retries a
  failed attempt after a random delay up to 50 ms x 2^attempt (capped at 500 ms).
  Reported: the time from the server listening again (polled every 5 ms) until every
  client holds a snapshot; the errors by kind (refused connections while no server
  listened are counted apart); the kernel's listen-queue overflows over the storm
  (``TcpExt: ListenOverflows``); the exceptions in the server's log. Each storm runs
  with ``max_connections`` 1000 (what docs/performance.md recommends) and with
  redis-py's default pool (100).

Writes only under a temporary directory, removed at the end (and the peer venv,
``/tmp/liveops-peer-venv``, which is reused). About 4 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _peer  # noqa: E402
import connect_site  # noqa: E402
from _net import free_port  # noqa: E402
from _procs import cpu_seconds, raise_fd_limit  # noqa: E402

SIDES = ("ours", "peer")
LAYERS = ("core", "memory")
ROUTINGS = ("plain", "session")
WARM_UP = 5
OPEN_TIMEOUT = 30.0
#: Retries after a failed attempt: a random delay up to BASE x 2^attempt, at most CAP.
RETRY_BASE, RETRY_CAP = 0.05, 0.5
#: A connect-time sample slower than this is reported as an error, not waited for.
SNAPSHOT_TIMEOUT = 10.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def headers_for(routing: str, session: str) -> dict[str, str]:
    """Return what a browser sends with the upgrade: the session cookie and its origin."""
    if routing == "plain":
        return {}
    return {"Cookie": f"sessionid={session}", "Origin": "http://127.0.0.1"}


def url_for(port: int, routing: str, path: str) -> str:
    return f"ws://127.0.0.1:{port}{'/auth' if routing == 'session' else ''}{path}"


# --- queries per connect -----------------------------------------------------------------


def tables(statements: list[str]) -> str:
    """Name each statement by its first table: what the queries of a connect read."""
    names = []
    for sql in statements:
        match = re.search(r'FROM "(\w+)"', sql)
        names.append(match[1] if match else sql.split()[0])
    return ", ".join(names)


def count_queries(stack: connect_site.Stack, side: str, connects: int) -> dict[str, Any]:
    env = stack.env(side, "memory", f"queries-{side}")
    result: dict[str, Any] = stack.run(side, env, "queries", str(connects))
    return result


def queries_table(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    yield (
        "Queries per connect, until the snapshot is held: the median count, the table each "
        "query reads, and the first (cold) connect\n"
    )
    yield "| routing | ours | django-liveops 0.4.1 | ours/theirs |"
    yield "|---|---|---|---|"
    labels = {
        "plain": "benchmark site (owner set, no auth middleware)",
        "auth": "session cookie and the page's view grant, behind the recommended middleware",
        "nogrant": "session cookie, no grant (a page older than GRANT_SECONDS)",
    }
    for routing in ("plain", "auth", "nogrant"):
        cells, medians = [], []
        for side in SIDES:
            r = results.get(side)
            if r is None:
                cells.append("not run")
                continue
            counts = r[routing]
            median = statistics.median(counts)
            medians.append(median)
            spread = (
                "" if min(counts) == max(counts) else f" (min {min(counts)}, max {max(counts)})"
            )
            cells.append(
                f"{median:g}{spread}: {tables(r[f'{routing}_sql'])}; "
                f"first connect {r[f'{routing}_first']}"
            )
        ratio = f"{medians[0] / medians[1]:.2f}" if len(medians) == 2 and medians[1] else "—"
        yield f"| {labels[routing]} | {cells[0]} | {cells[1]} | {ratio} |"


# --- connect time ------------------------------------------------------------------------


@dataclass
class Timing:
    handshake_ms: list[float] = field(default_factory=list)
    snapshot_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


async def time_connects(
    side: str, url: str, headers: dict[str, str], count: int
) -> tuple[Timing, int]:
    timing = Timing()
    frame_bytes = 0
    for n in range(count + WARM_UP):
        begun = time.monotonic()
        try:
            async with connect(url, additional_headers=headers, max_size=None) as ws:
                opened = time.monotonic()
                while True:
                    text = str(await asyncio.wait_for(ws.recv(), SNAPSHOT_TIMEOUT))
                    if connect_site.is_snapshot(side, connect_site.frame_html(text)):
                        break
                held = time.monotonic()
        except Exception as exc:  # counted and shown; the next connect goes on
            timing.errors[type(exc).__name__] += 1
            continue
        if n >= WARM_UP:
            timing.handshake_ms.append((opened - begun) * 1000)
            timing.snapshot_ms.append((held - begun) * 1000)
            frame_bytes = len(text.encode())
    return timing, frame_bytes


def time_side(
    stack: connect_site.Stack, side: str, layer: str, count: int
) -> dict[str, tuple[Timing, int]]:
    env = stack.env(side, layer, f"time-{side}-{layer}")
    created = stack.setup(side, env, 1)
    port = free_port()
    name = f"time-{side}-{layer}"
    server = stack.start_server(side, env, port, name)
    try:
        return {
            routing: asyncio.run(
                time_connects(
                    side,
                    url_for(port, routing, created["paths"][0]),
                    headers_for(routing, created["session"]),
                    count,
                )
            )
            for routing in ROUTINGS
        }
    finally:
        stack.stop(server)


def timing_table(results: dict[tuple[str, str], dict[str, tuple[Timing, int]]]) -> Iterator[str]:
    yield (
        "Connect time, sequential: from the start of the handshake until the snapshot is held "
        "at the client, ms p50 / p99 (p50 of the handshake alone)\n"
    )
    yield "| layer | routing | ours | django-liveops 0.4.1 | ours/theirs p50, p99 |"
    yield "|---|---|---|---|---|"
    layers = sorted({layer for _, layer in results}, key=LAYERS.index)
    for layer in layers:
        for routing in ROUTINGS:
            cells, figures = [], []
            for side in SIDES:
                entry = results.get((side, layer), {}).get(routing)
                if entry is None:
                    cells.append("not run")
                    continue
                t, size = entry
                p50, p99 = percentile(t.snapshot_ms, 0.5), percentile(t.snapshot_ms, 0.99)
                figures.append((p50, p99))
                errors = f"; errors {dict(t.errors)}" if t.errors else ""
                cells.append(
                    f"{p50:.2f} / {p99:.2f} ({percentile(t.handshake_ms, 0.5):.2f}); "
                    f"n={len(t.snapshot_ms)}, snapshot {size} B{errors}"
                )
            ratio = (
                f"{figures[0][0] / figures[1][0]:.2f}, {figures[0][1] / figures[1][1]:.2f}"
                if len(figures) == 2
                else "—"
            )
            yield f"| {layer} | {routing} | {cells[0]} | {cells[1]} | {ratio} |"


# --- the reconnect storm -----------------------------------------------------------------


def listen_overflows() -> tuple[int, int]:
    """Return the kernel's TcpExt ListenOverflows and ListenDrops counters."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
            return table.get("ListenOverflows", 0), table.get("ListenDrops", 0)
    return 0, 0


def thread_cpu(pid: int) -> dict[int, float]:
    """Return the CPU seconds of each thread of a process, by thread id."""
    result = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            result[int(task.name)] = cpu_seconds(pid, task=int(task.name))
    return result


def log_exceptions(text: str) -> Counter[str]:
    """Count a server log's exception lines (``SomeError: ...``) and liveops warnings, by kind."""
    kinds: Counter[str] = Counter()
    for match in re.finditer(r"^([\w.]*(?:Error|Exception|Full|Exit))\b", text, re.MULTILINE):
        kinds[match[1].rsplit(".", 1)[-1]] += 1
    for match in re.finditer(r"^(liveops .*)$", text, re.MULTILINE):
        # One kind per message, whatever operation it names.
        kinds[re.sub(r"\S*[0-9a-f]{8}-[0-9a-f-]{27}", "(op)", match[1])] += 1
    return kinds


@dataclass
class Tally:
    """What every storm client saw, by phase ("initial", "restart")."""

    phase: str = "initial"
    listening: bool = True
    errors: dict[str, Counter[str]] = field(
        default_factory=lambda: {"initial": Counter(), "restart": Counter()}
    )
    held: dict[str, dict[int, float]] = field(
        default_factory=lambda: {"initial": {}, "restart": {}}
    )
    clients: int = 0
    all_held: dict[str, asyncio.Event] = field(
        default_factory=lambda: {"initial": asyncio.Event(), "restart": asyncio.Event()}
    )
    sockets: set[ClientConnection] = field(default_factory=set)

    def error(self, kind: str) -> None:
        self.errors[self.phase][kind] += 1

    def hold(self, index: int) -> None:
        if not self.listening:
            return  # a snapshot from the server being stopped: the restart has not happened
        held = self.held[self.phase]
        if index not in held:
            held[index] = time.monotonic()
            if len(held) == self.clients:
                self.all_held[self.phase].set()


async def storm_client(
    index: int, side: str, url: str, headers: dict[str, str], tally: Tally
) -> None:
    """Stay connected, as a page would: reconnect at once when closed, retry with backoff."""
    rng = random.Random(index)
    attempt = 0
    while True:
        if attempt:
            await asyncio.sleep(rng.uniform(0, min(RETRY_CAP, RETRY_BASE * 2**attempt)))
        try:
            # No client pings: browsers send none.
            ws = await connect(
                url,
                additional_headers=headers,
                open_timeout=OPEN_TIMEOUT,
                ping_interval=None,
                max_size=None,
            )
        except ConnectionRefusedError:
            tally.error("refused" if not tally.listening else "refused while listening")
            attempt += 1
            continue
        except InvalidStatus as exc:
            tally.error(f"handshake HTTP {exc.response.status_code}")
            attempt += 1
            continue
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            tally.error(f"handshake {type(exc).__name__}")
            attempt += 1
            continue
        attempt, holding = 0, False
        tally.sockets.add(ws)
        try:
            async for text in ws:
                if not holding and connect_site.is_snapshot(
                    side, connect_site.frame_html(str(text))
                ):
                    holding = True
                    tally.hold(index)
        except ConnectionClosed:
            pass  # the close code is read below
        except Exception as exc:  # shown in the table by kind
            tally.error(f"receive {type(exc).__name__}")
        finally:
            tally.sockets.discard(ws)
        code = ws.close_code
        tally.error(f"closed {code}{'' if holding else ' before the snapshot'}")
        if holding is False:
            attempt = 1  # a failed session counts as a failed attempt


@dataclass
class Storm:
    side: str
    pool: str
    ops: int
    clients: int
    initial_s: float = float("nan")
    initial_held: int = 0
    shutdown_s: float = float("nan")
    start_s: float = float("nan")
    all_held_s: float = float("nan")
    p50_s: float = float("nan")
    restart_held: int = 0
    errors: dict[str, Counter[str]] = field(default_factory=dict)
    overflows: tuple[int, int] = (0, 0)
    log_errors: Counter[str] = field(default_factory=Counter)
    server_fds: int = 0
    redis_clients: int = 0
    server_cpu_s: float = float("nan")
    main_thread_cpu_s: float = float("nan")
    busiest_other_cpu_s: float = float("nan")
    clients_cpu_s: float = float("nan")
    seconds: float = 0.0


async def wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float) -> float:
    """Poll ``port`` every 5 ms without blocking the clients; return when it answered."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.005)
            continue
        answered = time.monotonic()
        writer.close()
        return answered
    raise RuntimeError(f"nothing listened on {port}")


async def storm(
    stack: connect_site.Stack, side: str, pool: int | None, ops: int, args: argparse.Namespace
) -> Storm:
    """Connect the clients, restart the server under them, time their return."""
    begun = time.monotonic()
    result = Storm(side, str(pool or "default (100)"), ops, args.storm_clients)
    name = f"storm-{side}-{pool}-{ops}"
    env = stack.env(side, "core", name, pool=pool)
    created = stack.setup(side, env, ops)
    port = free_port()
    server = stack.start_server(side, env, port, f"{name}-server-1")
    worker = await stack.start_worker(side, env, f"{name}-worker")
    tally = Tally(clients=args.storm_clients)
    tasks: list[asyncio.Task[None]] = []
    overflows = listen_overflows()
    try:
        await worker.command({"mode": "run", "pks": created["pks"], "every": args.every})
        headers = headers_for(args.storm_routing, created["session"])
        started = time.monotonic()
        for i in range(args.storm_clients):
            url = url_for(port, args.storm_routing, created["paths"][i % ops])
            tasks.append(asyncio.create_task(storm_client(i, side, url, headers, tally)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.all_held["initial"].wait(), args.storm_timeout)
        result.initial_held = len(tally.held["initial"])
        if tally.held["initial"]:
            result.initial_s = max(tally.held["initial"].values()) - started
        result.server_fds = len(os.listdir(f"/proc/{server.pid}/fd"))
        result.redis_clients = int(stack.redis_info("clients")["connected_clients"])

        # The restart: SIGTERM, wait for the exit without blocking the clients, start again.
        tally.phase, tally.listening = "restart", False
        stopping = time.monotonic()
        os.killpg(server.pid, signal.SIGTERM)
        while server.poll() is None:
            if time.monotonic() - stopping > 30:
                os.killpg(server.pid, signal.SIGKILL)
            await asyncio.sleep(0.005)
        stack.started.remove(server)
        result.shutdown_s = time.monotonic() - stopping
        spawning = time.monotonic()
        server = stack.start(f"{name}-server-2", stack.server_args(side, port), env)
        listening = await wait_listening(port, server, spawning + 60)
        tally.listening = True
        result.start_s = listening - spawning
        cpu_before, harness_before = cpu_seconds(server.pid), time.process_time()
        threads_before = thread_cpu(server.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.all_held["restart"].wait(), args.storm_timeout)
        result.server_cpu_s = cpu_seconds(server.pid) - cpu_before
        result.clients_cpu_s = time.process_time() - harness_before
        # The event loop runs in the main thread; the sync (database) code in others.
        used = {t: c - threads_before.get(t, 0.0) for t, c in thread_cpu(server.pid).items()}
        result.main_thread_cpu_s = used.pop(server.pid, float("nan"))
        result.busiest_other_cpu_s = max(used.values(), default=0.0)
        held = tally.held["restart"]
        result.restart_held = len(held)
        if held:
            result.all_held_s = max(held.values()) - listening
            result.p50_s = statistics.median(t - listening for t in held.values())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ws in tally.sockets:  # gone at once, so the server's shutdown waits for none
            ws.transport.abort()
        await worker.close()
        stack.stop(server)
    after = listen_overflows()
    result.overflows = (after[0] - overflows[0], after[1] - overflows[1])
    result.errors = tally.errors
    for n in (1, 2):
        result.log_errors += log_exceptions(stack.log(f"{name}-server-{n}", whole=True))
    result.seconds = time.monotonic() - begun
    return result


def kinds(counter: Counter[str]) -> str:
    return ", ".join(f"{k} x{n}" for k, n in counter.most_common()) or "none"


def storm_table(storms: list[Storm]) -> Iterator[str]:
    yield (
        "Reconnect storm (Redis core layer): the server restarted under its clients; errors "
        "by kind, x count\n"
    )
    yield (
        "| storm | side | initial: all hold a snapshot after (errors); server fds, Redis clients "
        "| restart: shutdown s, start s | **after listening: all hold a snapshot, s** (p50) "
        "| CPU s meanwhile: server (its main thread, busiest other thread), clients "
        "| errors while reconnecting "
        "| listen overflows / drops | exceptions in server logs | ours/theirs (all hold) |"
    )
    yield "|---|---|---|---|---|---|---|---|---|---|"
    by_case = {(s.side, s.pool, s.ops): s for s in storms}
    for s in storms:
        case = f"{s.clients} clients over {s.ops} op{'s' if s.ops > 1 else ''}, pool {s.pool}"
        initial = (
            f"{s.initial_s:.2f} s"
            if s.initial_held == s.clients
            else f"only {s.initial_held}/{s.clients} within the timeout"
        )
        held = (
            f"**{s.all_held_s:.2f}** ({s.p50_s:.2f})"
            if s.restart_held == s.clients
            else f"only {s.restart_held}/{s.clients} within the timeout"
        )
        other = by_case.get(("peer", s.pool, s.ops))
        ratio = "—"
        if s.side == "ours" and other is not None:
            if s.restart_held == s.clients and other.restart_held == other.clients:
                ratio = f"{s.all_held_s / other.all_held_s:.2f}"
            elif s.restart_held == s.clients:
                ratio = "peer did not finish"
        yield (
            f"| {case} | {s.side} | {initial} ({kinds(s.errors.get('initial', Counter()))}); "
            f"{s.server_fds}, {s.redis_clients} "
            f"| {s.shutdown_s:.2f}, {s.start_s:.2f} | {held} "
            f"| {s.server_cpu_s:.2f} ({s.main_thread_cpu_s:.2f}, {s.busiest_other_cpu_s:.2f}), "
            f"{s.clients_cpu_s:.2f} "
            f"| {kinds(s.errors.get('restart', Counter()))} "
            f"| {s.overflows[0]} / {s.overflows[1]} | {kinds(s.log_errors)} | {ratio} |"
        )


# --- main --------------------------------------------------------------------------------


def main() -> None:
    """Parse the arguments, run the three parts, print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--query-connects", type=int, default=10)
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS))
    parser.add_argument("--storm-clients", type=int, default=1000)
    parser.add_argument("--storm-ops", type=int, nargs="+", default=[1, 200])
    parser.add_argument(
        "--pools", nargs="+", default=["1000", "default"], help="max_connections, or default"
    )
    parser.add_argument("--storm-routing", choices=ROUTINGS, default="session")
    parser.add_argument("--storm-timeout", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between percents")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("queries", "time", "storm"),
        default=["queries", "time", "storm"],
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    fds = raise_fd_limit()
    somaxconn = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.2f}), "
        f"Python {platform.python_version()}, "
        f"RLIMIT_NOFILE {fds}, somaxconn {somaxconn} (uvicorn's backlog: 2048)",
        flush=True,
    )
    stack = connect_site.Stack("liveops-connect-")
    queries: dict[str, dict[str, Any]] = {}
    timings: dict[tuple[str, str], dict[str, tuple[Timing, int]]] = {}
    storms: list[Storm] = []
    try:
        for side in args.sides:
            print(f"# {side}: {stack.package(side)}", flush=True)
        if "peer" in args.sides:
            print(f"# peer runs on: {_peer.versions()}", flush=True)
        stack.start_redis()
        if "queries" in args.parts:
            for side in args.sides:
                queries[side] = count_queries(stack, side, args.query_connects)
            print("  done: queries", file=sys.stderr, flush=True)
        if "time" in args.parts:
            for layer in args.layers:
                for side in args.sides:
                    timings[(side, layer)] = time_side(stack, side, layer, args.connects)
                    print(f"  done: connect time, {side}, {layer}", file=sys.stderr, flush=True)
        if "storm" in args.parts:
            for ops in args.storm_ops:
                for pool in args.pools:
                    for side in args.sides:
                        size = None if pool == "default" else int(pool)
                        storms.append(asyncio.run(storm(stack, side, size, ops, args)))
                        print(
                            f"  done: storm, {side}, pool {pool}, {ops} ops "
                            f"({storms[-1].seconds:.0f} s)",
                            file=sys.stderr,
                            flush=True,
                        )
    finally:
        stack.close(keep=args.keep)
    if queries:
        print("\n".join(queries_table(queries)) + "\n")
    if timings:
        print("\n".join(timing_table(timings)) + "\n")
    if storms:
        print("\n".join(storm_table(storms)))
    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
