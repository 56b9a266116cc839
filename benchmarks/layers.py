"""Fan-out through Redis: channels_redis's RedisChannelLayer against RedisPubSubChannelLayer.

    .venv/bin/python benchmarks/layers.py [--servers 3] [--clients 50 100] [--seconds 10]

For each layer and each client count: a private redis-server on a free loopback
port, ``--servers`` uvicorn processes serving ``LiveOperationConsumer``
(``benchmarks/layer_site.py``), ``--clients`` WebSocket clients on each, and one
worker process that runs an operation reporting progress far faster than
``THROTTLE_HZ`` (10) for ``--seconds``. Every message the worker sends carries its
sequence number and send time (``time.monotonic()``, one clock for every process
on this machine); every client records what it receives.

Prints, per run: the share of sent messages each client received, the latency from
``group_send`` to the client (p50, p99, max), how many clients ended holding the
terminal state, and CPU of the servers (per delivered frame) and of Redis.
Writes only under a temporary directory, removed at the end. About 80 s with the
defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _stamp  # noqa: E402
from _net import free_port  # noqa: E402
from _procs import Processes, cpu_seconds  # noqa: E402

LAYERS = ("core", "pubsub")
START_TIMEOUT = 20.0
CONNECT_TIMEOUT = 60.0
#: After the worker exits, how long clients may take to receive the terminal frame.
SETTLE_TIMEOUT = 10.0


@dataclass
class Client:
    """One WebSocket viewer: what it received, and when."""

    server: int
    seqs: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)
    terminal: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None

    async def listen(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                received = time.monotonic()
                stamp = _stamp.read(text)
                if stamp is None:
                    self.snapshot.set()
                else:
                    self.seqs.add(stamp[0])
                    self.latencies.append(received - stamp[1])
                if "data-liveop-terminal" in text:
                    self.terminal.set()
        except Exception as exc:  # the connection broke: recorded, shown in the table
            self.closed = repr(exc)
        else:
            self.closed = f"closed {ws.close_code}"


@dataclass
class Result:
    layer: str
    servers: int
    clients: int
    sent: int = 0
    frame_bytes: float = 0.0
    delivered: float = 0.0
    worst_client: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    final: int = 0
    server_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    clients_cpu_s: float = 0.0
    us_per_frame: float = 0.0
    broken: int = 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    layer: str, servers: int, per_server: int, seconds: float, deflate: bool
) -> Result:
    """Start everything for one run, measure, stop everything."""
    directory = Path(tempfile.mkdtemp(prefix="liveops-layers-"))
    procs = Processes(directory, start_timeout=START_TIMEOUT)
    sockets: list[ClientConnection] = []
    listeners: list[asyncio.Task[None]] = []
    worker: asyncio.subprocess.Process | None = None
    try:
        redis, redis_url = procs.start_redis()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "layer_site",
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
            "LIVEOPS_BENCH_DB": str(directory / "bench.sqlite3"),
            "LIVEOPS_BENCH_REDIS": redis_url,
            "LIVEOPS_BENCH_LAYER": layer,
            "PYTHONDONTWRITEBYTECODE": "1",  # write nothing outside the temporary directory
        }
        setup = await asyncio.create_subprocess_exec(
            *(sys.executable, "layer_site.py", "setup"),
            cwd=HERE,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(setup.communicate(), 60)
        if setup.returncode:
            raise RuntimeError(f"setup failed ({setup.returncode}):\n{err.decode()[-3000:]}")
        created = json.loads(out.decode().strip().splitlines()[-1])
        env["LIVEOPS_BENCH_OWNER"] = str(created["owner"])

        ports = [free_port() for _ in range(servers)]
        server_procs = [
            procs.start(
                f"uvicorn-{port}",
                [
                    *(sys.executable, "-m", "uvicorn", "layer_site:application"),
                    *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"),
                    *("--log-level", "warning", "--no-access-log"),
                ],
                env,
            )
            for port in ports
        ]
        for proc, port in zip(server_procs, ports, strict=True):
            procs.wait_for_port(proc, f"uvicorn-{port}", port)

        clients: list[Client] = []
        semaphore = asyncio.Semaphore(50)  # connect in waves, as reloading pages do

        async def open_one(index: int, port: int) -> None:
            async with semaphore:
                ws = await connect(
                    f"ws://127.0.0.1:{port}/ws/liveops/?op={created['token']}",
                    open_timeout=CONNECT_TIMEOUT,
                    max_size=None,
                    # Browsers offer permessage-deflate and uvicorn accepts it.
                    compression="deflate" if deflate else None,
                )
            sockets.append(ws)
            client = Client(index)
            clients.append(client)
            listeners.append(asyncio.create_task(client.listen(ws)))

        await asyncio.wait_for(
            asyncio.gather(
                *(open_one(i, port) for i, port in enumerate(ports) for _ in range(per_server))
            ),
            CONNECT_TIMEOUT,
        )
        await asyncio.wait_for(
            asyncio.gather(*(c.snapshot.wait() for c in clients)), CONNECT_TIMEOUT
        )

        watched = [*server_procs, redis]
        before = [cpu_seconds(p.pid) for p in watched]
        harness_before = time.process_time()
        worker = await asyncio.create_subprocess_exec(
            *(sys.executable, "layer_site.py", "worker", created["pk"], str(seconds)),
            cwd=HERE,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(worker.communicate(), seconds + 60)
        if worker.returncode:
            raise RuntimeError(f"the worker failed ({worker.returncode}):\n{err.decode()[-3000:]}")
        report = json.loads(out.decode().strip().splitlines()[-1])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.terminal.wait() for c in clients)), SETTLE_TIMEOUT
            )
        after = [cpu_seconds(p.pid) for p in watched]
        used = [b - a for a, b in zip(before, after, strict=True)]
        harness = time.process_time() - harness_before

        result = Result(layer, servers, per_server)
        result.sent = report["sent"]
        result.frame_bytes = report["bytes"] / max(1, report["sent"])
        shares = [len(c.seqs) / result.sent for c in clients]
        result.delivered = statistics.fmean(shares)
        result.worst_client = min(shares)
        latencies = [ms for c in clients for ms in c.latencies]
        result.p50_ms = percentile(latencies, 0.50) * 1000
        result.p99_ms = percentile(latencies, 0.99) * 1000
        result.max_ms = max(latencies, default=float("nan")) * 1000
        result.final = sum(c.terminal.is_set() for c in clients)
        result.broken = sum(c.closed is not None for c in clients)
        result.server_cpu_s = sum(used[:-1])
        result.redis_cpu_s = used[-1]
        result.clients_cpu_s = harness
        frames = sum(len(c.latencies) for c in clients)
        result.us_per_frame = result.server_cpu_s / max(1, frames) * 1e6
        return result
    finally:
        if worker is not None and worker.returncode is None:
            worker.kill()
            await worker.wait()
        for task in listeners:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        procs.stop_all()
        shutil.rmtree(directory, ignore_errors=True)


def table(results: list[Result]) -> Iterator[str]:
    yield (
        "| layer | servers x clients | msgs sent (avg bytes) | delivered (worst client) "
        "| p50 / p99 / max ms | final state | server CPU s (µs/frame) | Redis CPU s "
        "| clients CPU s |"
    )
    yield "|---|---|---|---|---|---|---|---|---|"
    for r in results:
        broken = f", {r.broken} sockets broke" if r.broken else ""
        yield (
            f"| {r.layer} | {r.servers} x {r.clients} | {r.sent} ({r.frame_bytes:.0f}) "
            f"| {r.delivered:.1%} ({r.worst_client:.1%}) "
            f"| {r.p50_ms:.1f} / {r.p99_ms:.1f} / {r.max_ms:.1f} "
            f"| {r.final}/{r.servers * r.clients}{broken} "
            f"| {r.server_cpu_s:.2f} ({r.us_per_frame:.0f}) | {r.redis_cpu_s:.2f} "
            f"| {r.clients_cpu_s:.2f} |"
        )


def main() -> None:
    """Parse the arguments, run every combination, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS))
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="clients do not offer permessage-deflate (browsers do)",
    )
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{args.servers} uvicorn processes, worker at THROTTLE_HZ 10 for {args.seconds:g} s, "
        f"permessage-deflate {'off' if args.no_deflate else 'on'}",
        flush=True,
    )
    results = []
    for per_server in args.clients:
        for layer in args.layers:
            result = asyncio.run(
                measure(layer, args.servers, per_server, args.seconds, not args.no_deflate)
            )
            results.append(result)
            print(f"  done: {layer}, {args.servers} x {per_server}", file=sys.stderr, flush=True)
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
