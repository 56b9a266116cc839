"""Freshness: how soon a viewer holds a new percent, and the result after its commit, vs the peer.

    .venv/bin/python benchmarks/freshness.py [--updates 300] [--results 40] [--clients 5]

Runs one workload through this package and through django-liveops 0.4.1 (its own
venv, see ``_peer.py``; driven through its documented API: an operation model
subclassing its ``LiveOperation``, ``op.enqueue()`` with its eager runner, its own
consumer and routing), each served by one uvicorn process
(``benchmarks/connect_site.py``) with ``THROTTLE_HZ`` = 10, on two layers:

- **core**: ``channels_redis.core.RedisChannelLayer`` on a private ``redis-server``;
  the operation runs in a separate worker process;
- **memory**: ``InMemoryChannelLayer``; the operation runs in a thread of the server
  process (``POST /bench/run``), since that layer reaches no other process.

``--clients`` WebSocket clients watch each operation.

- **freshness**: ``run()`` sets the percent to 1, 2, 3, ... (100 values an operation,
  ``--updates`` in all), each at an irregular interval of 20-250 ms (seeded, the same
  for both packages), and records ``time.monotonic()`` at each ``p.percent(x)`` call
  (one clock for every process on this machine). Each client parses the percent out
  of every frame (ours: the ``<progress value>`` of the progress region; the peer:
  its bar's ``width:x%``) and records when it first holds each value. Freshness is
  that time minus the call's, over every (value, client) held. Values a client never
  held were superseded by a newer one before a message went out (ours coalesces to
  at most ``THROTTLE_HZ`` messages a second, by design): counted, not timed.
- **result after commit**: ``--results`` operations each set three percents 10 ms
  apart and then the result. The commit time is when the first
  ``transaction.on_commit`` callback after ``p.result()`` starts (wrapped in the
  worker: ours publishes the terminal state there; the peer registers its result
  send right after its autocommit ``save()``, so it runs at once). Each client
  records when a frame with the terminal state arrives (ours: ``data-liveop-terminal``;
  the peer: its ``op-result`` fragment).

Our targets: freshness p99 <= 1/THROTTLE_HZ + 30 ms = 130 ms; result <= 50 ms after
the commit (p99). Writes only under a temporary directory, removed at the end (and
the peer venv, ``/tmp/liveops-peer-venv``, which is reused). About 3 minutes with the
defaults.
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
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _peer  # noqa: E402
import connect_site  # noqa: E402
from _net import free_port  # noqa: E402
from _procs import raise_fd_limit  # noqa: E402

SIDES = ("ours", "peer")
LAYERS = ("core", "memory")
THROTTLE_HZ = 10
FRESH_TARGET_MS = 1000 / THROTTLE_HZ + 30
RESULT_TARGET_MS = 50.0
VALUES_PER_OP = 100
#: How long clients may take to hold the terminal state after the run returned.
SETTLE_TIMEOUT = 10.0

#: Where each side's progress region shows the percent.
PERCENT = {
    "ours": re.compile(r'<progress\b[^>]*\bvalue="([0-9.]+)"'),
    "peer": re.compile(r'style="width:([0-9.]+)%"'),
}


def is_terminal(side: str, html: str) -> bool:
    """Return whether a frame carries the operation's end."""
    return "data-liveop-terminal" in html if side == "ours" else 'id="op-result"' in html


@dataclass
class Viewer:
    """One WebSocket client: when it first held each percent, and the end."""

    side: str
    seen: dict[int, float] = field(default_factory=dict)
    terminal_at: float | None = None
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)
    terminal: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None

    async def listen(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                received = time.monotonic()
                html = connect_site.frame_html(str(text))
                if not html:
                    continue  # the peer's list and "finished" notices
                if connect_site.is_snapshot(self.side, html):
                    self.snapshot.set()
                values = PERCENT[self.side].findall(html)
                if values:  # the last element of a frame is what the page shows
                    self.seen.setdefault(round(float(values[-1])), received)
                if self.terminal_at is None and is_terminal(self.side, html):
                    self.terminal_at = received
                    self.terminal.set()
        except Exception as exc:  # the connection broke: shown in the table
            self.closed = repr(exc)


@dataclass
class Outcome:
    """What one (side, layer) measured."""

    fresh_ms: list[float] = field(default_factory=list)
    values: int = 0
    held_by_all: int = 0
    held_by_none: int = 0
    held_by_some: int = 0
    result_ms: list[float] = field(default_factory=list)
    results: int = 0
    #: Values (operations) that some client held later than the target: one slow
    #: moment delays every client of an operation, so p99 can be one such event.
    late_values: int = 0
    late_results: int = 0
    missing_results: int = 0
    broken: int = 0
    seconds: float = 0.0


def plans(updates: int, seed: int) -> list[list[list[float]]]:
    """Return each operation's (value, seconds from its start) pairs; the same every run."""
    rng = random.Random(seed)
    result = []
    for first in range(0, updates, VALUES_PER_OP):
        at, plan = 0.0, []
        for value in range(1, min(VALUES_PER_OP, updates - first) + 1):
            at += rng.uniform(0.020, 0.250)
            plan.append([float(value), round(at, 4)])
        result.append(plan)
    return result


class Watch:
    """``clients`` sockets on one operation, for as long as the ``async with`` lasts."""

    def __init__(self, side: str, url: str, clients: int) -> None:
        self.side, self.url, self.count = side, url, clients
        self.viewers = [Viewer(side) for _ in range(clients)]
        self.sockets: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Watch:
        self.sockets = list(
            await asyncio.gather(
                *(connect(self.url, open_timeout=30, max_size=None) for _ in range(self.count))
            )
        )
        self.tasks = [
            asyncio.create_task(viewer.listen(ws))
            for viewer, ws in zip(self.viewers, self.sockets, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(v.snapshot.wait() for v in self.viewers)), 30)
        return self

    async def settle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(v.terminal.wait() for v in self.viewers)), SETTLE_TIMEOUT
            )

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def measure(
    stack: connect_site.Stack, side: str, layer: str, args: argparse.Namespace
) -> Outcome:
    """Start one side's server (and worker) on one layer, run the workload, stop them."""
    begun = time.monotonic()
    outcome = Outcome()
    fresh_plans = plans(args.updates, args.seed)
    env = stack.env(side, layer, f"{side}-{layer}")
    created = stack.setup(side, env, len(fresh_plans) + args.results)
    port = free_port()
    server = stack.start_server(side, env, port, f"server-{side}-{layer}")
    worker = None
    try:
        run: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
        if layer == "core":
            worker = await stack.start_worker(side, env, f"worker-{side}-{layer}")
            run = worker.command
        else:

            async def run(command: dict[str, Any]) -> dict[str, Any]:
                return await connect_site.post_command(port, command)

        urls = [f"ws://127.0.0.1:{port}{path}" for path in created["paths"]]
        for plan, pk, url in zip(fresh_plans, created["pks"], urls, strict=False):
            async with Watch(side, url, args.clients) as watch:
                answer = await run({"mode": "fresh", "pk": pk, "plan": plan})
                await watch.settle()
            outcome.broken += sum(v.closed is not None for v in watch.viewers)
            for value, called in answer["calls"]:
                holders = [v.seen[value] for v in watch.viewers if value in v.seen]
                outcome.fresh_ms += [(at - called) * 1000 for at in holders]
                outcome.values += 1
                outcome.late_values += (
                    max(holders, default=called) - called > FRESH_TARGET_MS / 1000
                )
                if len(holders) == len(watch.viewers):
                    outcome.held_by_all += 1
                elif holders:
                    outcome.held_by_some += 1
                else:
                    outcome.held_by_none += 1
        start = len(fresh_plans)
        for pk, url in zip(created["pks"][start:], urls[start:], strict=True):
            async with Watch(side, url, args.clients) as watch:
                answer = await run({"mode": "result", "pk": pk})
                await watch.settle()
            outcome.broken += sum(v.closed is not None for v in watch.viewers)
            outcome.results += 1
            delays = [
                (at - answer["commit"]) * 1000
                for at in (v.terminal_at for v in watch.viewers)
                if at is not None
            ]
            outcome.result_ms += delays
            outcome.missing_results += len(watch.viewers) - len(delays)
            outcome.late_results += max(delays, default=0.0) > RESULT_TARGET_MS
    except Exception as exc:
        raise RuntimeError(
            f"{side}/{layer}: {exc!r}\n--- server log:\n{stack.log(f'server-{side}-{layer}')}"
            f"\n--- worker log:\n{stack.log(f'worker-{side}-{layer}')}"
        ) from exc
    finally:
        if worker is not None:
            await worker.close()
        stack.stop(server)
    outcome.seconds = time.monotonic() - begun
    return outcome


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stats(values: list[float]) -> tuple[float, float, float]:
    return percentile(values, 0.50), percentile(values, 0.99), max(values, default=float("nan"))


def ratio(ours: Outcome | None, peer: Outcome | None, key: str) -> str:
    """Return ours/theirs of p50 and p99 of one measure."""
    if ours is None or peer is None or not getattr(ours, key) or not getattr(peer, key):
        return "—"
    a, b = stats(getattr(ours, key)), stats(getattr(peer, key))
    return f"p50 {a[0] / b[0]:.2f}, p99 {a[1] / b[1]:.2f}"


def table(results: dict[tuple[str, str], Outcome], layers: list[str]) -> Iterator[str]:
    yield "| case | layer | ours | django-liveops 0.4.1 | ours/theirs |"
    yield "|---|---|---|---|---|"
    for layer in layers:
        ours, peer = results.get(("ours", layer)), results.get(("peer", layer))

        def cell(o: Outcome | None, key: str) -> str:
            if o is None:
                return "not run"
            values = getattr(o, key)
            if not values:
                return "nothing held"
            p50, p99, top = stats(values)
            if key == "fresh_ms":
                target, late = FRESH_TARGET_MS, f"{o.late_values} of {o.values} values"
            else:
                target, late = RESULT_TARGET_MS, f"{o.late_results} of {o.results} operations"
            verdict = "meets" if p99 <= target else "misses"
            return (
                f"{p50:.1f} / {p99:.1f} / {top:.1f} (n={len(values)}; {verdict} ≤ {target:g}; "
                f"later for some client: {late})"
            )

        yield (
            f"| freshness ms, p50 / p99 / max | {layer} | {cell(ours, 'fresh_ms')} "
            f"| {cell(peer, 'fresh_ms')} | {ratio(ours, peer, 'fresh_ms')} |"
        )

        def held(o: Outcome | None) -> str:
            if o is None:
                return "not run"
            some = f", by some only {o.held_by_some}" if o.held_by_some else ""
            return (
                f"{o.values} set: held by every client {o.held_by_all}, "
                f"superseded (held by none) {o.held_by_none}{some}"
            )

        yield f"| percent values | {layer} | {held(ours)} | {held(peer)} | — |"
        yield (
            f"| result after commit ms, p50 / p99 / max | {layer} | {cell(ours, 'result_ms')} "
            f"| {cell(peer, 'result_ms')} | {ratio(ours, peer, 'result_ms')} |"
        )

        def trouble(o: Outcome | None) -> str:
            if o is None:
                return "not run"
            return (
                f"{o.missing_results} results never arrived, {o.broken} sockets broke "
                f"({o.seconds:.0f} s)"
            )

        yield f"| trouble (time) | {layer} | {trouble(ours)} | {trouble(peer)} | — |"


def main() -> None:
    """Parse the arguments, run every (side, layer), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=300, help="percent values in all")
    parser.add_argument("--results", type=int, default=40, help="operations for the result")
    parser.add_argument("--clients", type=int, default=5, help="WebSocket clients an operation")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS))
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    raise_fd_limit()
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.2f}), "
        f"Python {platform.python_version()}, "
        f"THROTTLE_HZ {THROTTLE_HZ}, {args.clients} clients an operation, "
        f"{args.updates} percent values at 20-250 ms (seed {args.seed}), "
        f"{args.results} results",
        flush=True,
    )
    stack = connect_site.Stack("liveops-freshness-")
    results: dict[tuple[str, str], Outcome] = {}
    try:
        for side in args.sides:
            print(f"# {side}: {stack.package(side)}", flush=True)
        if "peer" in args.sides:
            print(f"# peer runs on: {_peer.versions()}", flush=True)
        stack.start_redis()
        for layer in args.layers:
            for side in args.sides:
                results[(side, layer)] = asyncio.run(measure(stack, side, layer, args))
                print(
                    f"  done: {side}, {layer} ({results[(side, layer)].seconds:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        stack.close()
    print("\n".join(table(results, args.layers)))
    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
