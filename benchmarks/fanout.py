"""Fan-out: thousands of viewers of one operation on one server process.

    .venv/bin/python benchmarks/fanout.py [--clients 500 1000 2000 3000] [--seconds 8]
        [--contenders floor stock ours peer] [--deflate]

For each viewer count N and each contender: a fresh uvicorn process
(``benchmarks/fanout_site.py``, ``--backlog 4096``), N WebSocket viewers of one
operation connected to it in waves, and an operation that reports percent and
status every 5 ms and a log line every 50 ms for ``--seconds``, published at
``THROTTLE_HZ`` (10). Contenders:

- **floor**: a plain ASGI app (no Django, no Channels) sending one pre-serialized,
  stamped ~2.4 KB frame to every socket 10 times a second: the bare-frame floor;
- **stock**: a stock Channels ``AsyncWebsocketConsumer`` that joins the operation's
  group and forwards our publisher's messages (Redis core layer);
- **ours**: ``LiveOperationConsumer`` with the in-memory layer (the operation runs
  in the server process), the Redis core layer and the Redis pub/sub layer (the
  operation runs in a worker process);
- **peer**: django-liveops 0.4.1 from PyPI (its own venv, see ``_peer.py``; a project
  generated here at run time, driven through its documented API), same layers.

Every message sent to the operation's group carries a stamp (sequence number and
``time.monotonic()``, one clock for every process here, see ``_stamp.py``). The
viewers are one or two ``_lightws.py`` processes (raw asyncio sockets; they offer
permessage-deflate only with ``--deflate``), pinned to the last CPU; the server is
pinned to the others. Nothing is measured until the server has gone idle after the
viewers connected (the peer sends each new viewer's snapshot to the whole group). Per
row: frames sent, the share of them each
viewer received (mean, worst), the lag from stamp to viewer (p50/p99/max), how many
viewers ended holding the terminal state, the server's CPU (from /proc) and per
delivered frame, the server's memory per idle connection (RSS with N connected minus
RSS before, after a warm-up), and frames per server CPU second against stock and floor.

A case that fails prints an error row; a case of the peer that delivered under half of
the frames is not repeated with more viewers (``--no-skip`` to insist). The peer runs on
this venv's uvicorn, uvloop and httptools, linked (not installed) into the temporary
directory ahead of its venv's packages. Writes only under a temporary directory,
removed at the end (and the peer venv, ``/tmp/liveops-peer-venv``, reused). About 7
minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _lightws  # noqa: E402
import _peer  # noqa: E402
from _net import free_port  # noqa: E402
from _procs import Processes, cpu_seconds, raise_fd_limit  # noqa: E402

CONTENDERS = ("floor", "stock", "ours", "peer")
#: (contender, layer), in table order. The floor has no layer; stock runs on Redis core.
CASES = (
    ("floor", "-"),
    ("stock", "core"),
    ("ours", "memory"),
    ("ours", "core"),
    ("ours", "pubsub"),
    ("peer", "memory"),
    ("peer", "core"),
    ("peer", "pubsub"),
)
START_TIMEOUT = 30.0
#: After the operation ends, how long viewers may take to receive the terminal frame.
SETTLE_TIMEOUT = 10.0
WARM_UP_SOCKETS = 5
#: A peer case whose viewers received less than this share is not run with more viewers.
SATURATED = 0.5
#: The ASGI server and what it imports, linked for the peer: both sides run the same one.
SERVER_PACKAGES = ("uvicorn", "click", "h11", "uvloop", "httptools", "websockets")

PEER_MODELS = """
from liveops.models import LiveOperation


class Bench(LiveOperation):
    STEPS = {}
    stages = ["Work"]

    def run(self, p):
        for step in self.STEPS.get(self.pk, []):
            step(p)
"""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Result:
    contender: str
    layer: str
    clients: int
    connect_s: float = 0.0
    sent: int = 0
    frame_bytes: float = 0.0
    delivered: int = 0
    mean_share: float = 0.0
    worst_share: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    final: int = 0
    broken: int = 0
    reordered: int = 0
    plain: int = 0  # messages without a stamp: snapshots
    server_cpu_s: float = 0.0
    operation_cpu_s: float = 0.0  # in-process runs: the operation's own threads
    redis_cpu_s: float | None = None
    clients_cpu_s: float = 0.0
    kb_per_conn: float = 0.0
    error: str = ""

    @property
    def fanout_cpu_s(self) -> float:
        return self.server_cpu_s - self.operation_cpu_s

    @property
    def frames_per_cpu_s(self) -> float:
        if self.delivered <= 0 or self.fanout_cpu_s <= 0:
            return float("nan")
        return self.delivered / self.fanout_cpu_s


@dataclass
class Side:
    """One package's runtime: its python, environment and pre-created operations."""

    python: str
    pythonpath: list[str]
    db: Path
    owner: int = 0
    ops: list[list[str]] = field(default_factory=list)


class Bench:
    """What every case of one run shares: the temporary directory, the two sides."""

    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.directory = directory
        self.sides: dict[str, Side] = {}
        cpus = sorted(os.sched_getaffinity(0))
        pin = not args.no_pin and len(cpus) >= 2
        # The clients get the last CPU; the server the others (one, on this machine).
        self.server_cpus = ",".join(map(str, cpus[:-1])) if pin else ""
        self.client_cpus = str(cpus[-1]) if pin else ""

    def side(self, contender: str) -> Side:
        """Return the side that runs ``contender``: set it up (database, operations) once."""
        name = "peer" if contender == "peer" else "ours"
        if name in self.sides:
            return self.sides[name]
        if name == "peer":
            libs = self.directory / "server-libs"
            libs.mkdir()
            # The peer runs on the very uvicorn, uvloop and httptools ours does, whatever
            # its venv holds: links to this venv's copies, ahead of its own on the path.
            for package in SERVER_PACKAGES:
                spec = importlib.util.find_spec(package)
                if spec is None or spec.origin is None:
                    raise RuntimeError(f"{package} is not installed in {sys.prefix}")
                (libs / package).symlink_to(Path(spec.origin).parent)
            (self.directory / "peerapp").mkdir()
            (self.directory / "peerapp" / "__init__.py").write_text("")
            (self.directory / "peerapp" / "models.py").write_text(PEER_MODELS)
            side = Side(
                str(_peer.python()),
                [str(libs), str(self.directory), str(HERE)],
                self.directory / "peer.sqlite3",
            )
        else:
            side = Side(sys.executable, [str(HERE), str(ROOT)], self.directory / "ours.sqlite3")
        count = len(self.args.clients) * len(CASES)
        env = self.env(name, "memory", side)
        out = subprocess.run(
            [side.python, "fanout_site.py", "setup", str(count)],
            cwd=HERE,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode:
            raise RuntimeError(f"{name} setup failed:\n{out.stderr[-3000:]}")
        created = json.loads(out.stdout.strip().splitlines()[-1])
        side.owner, side.ops = created["owner"], created["ops"]
        self.sides[name] = side
        return side

    def env(self, contender: str, layer: str, side: Side, redis: str = "") -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "fanout_site",
            "PYTHONPATH": os.pathsep.join(side.pythonpath),
            "LIVEOPS_BENCH_CONTENDER": contender,
            "LIVEOPS_BENCH_LAYER": layer,
            "LIVEOPS_BENCH_DB": str(side.db),
            "LIVEOPS_BENCH_OWNER": str(side.owner),
            "LIVEOPS_BENCH_FRAME_BYTES": str(self.args.frame_bytes),
            "PYTHONDONTWRITEBYTECODE": "1",  # write nothing outside the temporary directory
        }
        if redis:
            env["LIVEOPS_BENCH_REDIS"] = redis
        env.pop("LIVEOPS_BENCH_CPUS", None)
        return env


async def went_idle(pid: int, within: float) -> bool:
    """Wait until the process uses under 5 % of a CPU over half a second; False if never."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < 0.025:
            return True
    return False


def http(port: int, method: str, path: str, timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {path}: {exc.code} {exc.read().decode()[:500]}") from exc


async def read_json_line(proc: asyncio.subprocess.Process, within: float) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), within)
    if not line:
        raise RuntimeError("a client process ended early")
    return dict(json.loads(line))


async def tell(proc: asyncio.subprocess.Process, command: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(command.encode() + b"\n")
    await proc.stdin.drain()


def viewer_path(contender: str, token: str) -> str:
    if contender == "floor":
        return "/ws/floor/"
    if contender == "stock":
        return f"/ws/stock/?op={quote(token, safe=':')}"
    if contender == "ours":
        return f"/ws/liveops/?op={quote(token, safe=':')}"
    return f"/asgi/notifications/?subscription_token={quote(token, safe='')}"


async def measure(bench: Bench, contender: str, layer: str, n: int) -> Result:
    """Start everything for one case, measure, stop everything."""
    args = bench.args
    directory = Path(tempfile.mkdtemp(prefix=f"{contender}-{layer}-{n}-", dir=bench.directory))
    procs = Processes(directory, start_timeout=START_TIMEOUT)
    result = Result(contender, layer, n)
    try:
        side = bench.side(contender)
        pk, token = side.ops.pop()
        redis: subprocess.Popen[bytes] | None = None
        redis_url = ""
        if layer in ("core", "pubsub"):
            redis, redis_url = procs.start_redis()
        env = bench.env(contender, layer, side, redis_url)
        port = free_port()
        server_env = {**env, "LIVEOPS_BENCH_CPUS": bench.server_cpus}
        server = procs.start(
            "uvicorn",
            [
                *(side.python, "-m", "uvicorn", "fanout_site:application"),
                *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"),
                *("--log-level", "warning", "--no-access-log", "--backlog", "4096"),
            ],
            server_env,
        )
        procs.wait_for_port(server, "uvicorn", port)

        path = viewer_path(contender, token)
        first_frame = contender in ("ours", "peer")  # they send a snapshot on connect
        marker = '"liveop_finished"' if contender == "peer" else "data-liveop-terminal"
        # Warm up (Django set up, first socket, first snapshot), then the RSS baseline.
        tally = _lightws.Tally(marker.encode())
        warm, errors = await _lightws.open_viewers(
            tally,
            port,
            path,
            WARM_UP_SOCKETS,
            wave=WARM_UP_SOCKETS,
            deflate=args.deflate,
            first_frame=first_frame,
            within=START_TIMEOUT,
        )
        if errors:
            raise RuntimeError(f"warm-up failed: {dict(errors)}\n{procs.log('uvicorn')}")
        for viewer in warm:
            viewer.close()
        await asyncio.sleep(1.0)  # the server handles the disconnects
        rss_before = rss_kb(server.pid)

        processes = args.client_procs or (1 if n <= 1000 else 2)
        shares = [n // processes + (i < n % processes) for i in range(processes)]
        clients = []
        connect_begun = time.monotonic()
        for i, count in enumerate(shares):
            client_args = [
                *(sys.executable, "_lightws.py", "--port", str(port), "--path", path),
                *("--count", str(count), "--wave", str(args.wave), "--terminal", marker),
                *("--connect-timeout", str(args.connect_timeout)),
                *("--report", str(directory / f"client-{i}.json")),
            ]
            if first_frame:
                client_args.append("--first-frame")
            if args.deflate:
                client_args.append("--deflate")
            if bench.client_cpus:
                client_args += ["--cpus", bench.client_cpus]
            clients.append(await procs.start_piped(f"client-{i}", client_args, dict(os.environ)))
        ready = [await read_json_line(c, args.connect_timeout + 30) for c in clients]
        result.connect_s = time.monotonic() - connect_begun
        connected = sum(r["ready"] for r in ready)
        if connected < n:
            first = next((r["error"] for r in ready if r["error"]), "")
            raise RuntimeError(f"{connected}/{n} connected in {result.connect_s:.0f} s ({first})")
        deflated = sum(r["deflated"] for r in ready)
        if args.deflate and deflated < n:
            raise RuntimeError(f"the server accepted permessage-deflate on {deflated}/{n}")
        # The peer sends each new viewer's snapshot to the whole group: N²/2 frames at
        # connect. Measure nothing until the server has worked through what connecting cost.
        if not await went_idle(server.pid, args.idle_timeout):
            counts = []
            for c in clients:
                await tell(c, "count")
                counts.append(await read_json_line(c, 30))
            plain = sum(x["plain"] for x in counts)
            raise RuntimeError(
                f"connected in {result.connect_s:.0f} s, but the server was still busy "
                f"{args.idle_timeout:.0f} s later; viewers had received {plain:,} "
                f"unstamped frames (snapshots)"
            )
        result.kb_per_conn = (rss_kb(server.pid) - rss_before) / n

        watched = [server.pid, *(c.pid for c in clients)]
        if redis is not None:
            watched.append(redis.pid)
        before = [cpu_seconds(pid) for pid in watched]
        if layer in ("core", "pubsub"):
            worker = await procs.start_piped(
                "worker", [side.python, "fanout_site.py", "worker", pk, str(args.seconds)], env
            )
            assert worker.stdout is not None
            out = await asyncio.wait_for(worker.stdout.read(), args.seconds + 120)
            await worker.wait()
            if worker.returncode:
                raise RuntimeError(f"the worker failed:\n{procs.log('worker')}")
            report = json.loads(out.decode().strip().splitlines()[-1])
        else:
            await asyncio.to_thread(
                http, port, "POST", f"/start?pk={pk}&seconds={args.seconds}", 30
            )
            report = await asyncio.to_thread(http, port, "GET", "/report", args.seconds + 120)
            result.operation_cpu_s = report["operation_cpu"]
        for c in clients:
            await tell(c, f"settle {SETTLE_TIMEOUT}")
        for c in clients:
            await read_json_line(c, SETTLE_TIMEOUT + 30)
        after = [cpu_seconds(pid) for pid in watched]
        used = [b - a for a, b in zip(before, after, strict=True)]
        for c in clients:
            await tell(c, "close")

        reports = [directory / f"client-{i}.json" for i in range(processes)]
        received = [json.loads(path.read_text()) for path in reports]
        result.sent = report["sent"]
        result.frame_bytes = report["bytes"] / max(1, report["sent"])
        distinct = [d for r in received for d in r["distinct"]]
        result.delivered = sum(r["frames"] for r in received)
        result.mean_share = statistics.fmean(distinct) / max(1, result.sent)
        result.worst_share = min(distinct) / max(1, result.sent)
        histogram: Counter[int] = Counter()
        for r in received:
            histogram.update({int(k): v for k, v in r["histogram"].items()})
        result.p50_ms = _lightws.percentile(histogram, 0.50)
        result.p99_ms = _lightws.percentile(histogram, 0.99)
        result.max_ms = max(r["max_ms"] for r in received)
        result.final = sum(r["terminal"] for r in received)
        result.broken = sum(sum(r["broken"].values()) for r in received)
        result.reordered = sum(r["reordered"] for r in received)
        result.plain = sum(r["plain"] for r in received)
        result.server_cpu_s = used[0]
        result.clients_cpu_s = sum(used[1 : 1 + processes])
        result.redis_cpu_s = used[-1] if redis is not None else None
        return result
    except Exception as exc:
        result.error = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else repr(exc)
        print(
            f"  error: {contender}/{layer}/{n}: {exc!r}\n{procs.log('uvicorn')[-1500:]}",
            file=sys.stderr,
            flush=True,
        )
        return result
    finally:
        await procs.stop_all_async()
        shutil.rmtree(directory, ignore_errors=True)


def fmt(value: float, spec: str = ".1f") -> str:
    return "—" if value != value else format(value, spec)  # NaN: nothing measured


LEGEND = f"""
- received: share of the frames sent that each viewer got (distinct stamps), mean and
  worst viewer, counted until every viewer held the final state or {SETTLE_TIMEOUT:g} s after
  the operation ended. final state: viewers holding the terminal frame by then (ours,
  stock, floor: `data-liveop-terminal`; peer: its `liveop_finished` message). Ours
  merges the updates a busy socket has not taken yet into one: under 100 % there is
  coalescing, not necessarily loss; the final state says whether viewers ended right.
- lag: stamp (just before the channel-layer send; floor: before its loop over the
  sockets) to the viewer reading it, over every stamped frame received (1 % buckets).
- server CPU: the uvicorn process over the same window, from /proc (10 ms ticks). In-memory
  rows run the operation in the server; its own threads ("op": ours, run() and the
  publisher thread that renders; peer, run()) are subtracted before µs/frame and ratios.
- µs/frame, frames/CPU-s: per frame delivered to a viewer. Ratios are against stock and
  floor at the same N. Frame sizes differ between contenders: see avg B.
- KB/conn: server RSS with N idle viewers minus RSS before they connected (after
  {WARM_UP_SOCKETS} warm-up sockets), divided by N.
"""


def table(results: list[Result]) -> Iterator[str]:
    yield (
        "| contender | layer | N (connect s) | frames sent (avg B) | received: mean (worst) "
        "| lag p50 / p99 / max ms | final state | server CPU s (µs/frame) "
        "| KB/conn | frames/CPU-s vs stock | vs floor | clients CPU s | Redis CPU s |"
    )
    yield "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in results:
        if r.error:
            yield f"| {r.contender} | {r.layer} | {r.clients} | error: {r.error} |" + " |" * 9
            continue
        same_n = {x.contender: x for x in results if x.clients == r.clients and not x.error}
        stock, floor = same_n.get("stock"), same_n.get("floor")
        vs_stock = r.frames_per_cpu_s / stock.frames_per_cpu_s if stock else float("nan")
        vs_floor = r.frames_per_cpu_s / floor.frames_per_cpu_s if floor else float("nan")
        cpu = f"{r.server_cpu_s:.2f}"
        if r.operation_cpu_s:
            cpu += f" - {r.operation_cpu_s:.2f} op"
        notes = []
        if r.broken:
            notes.append(f"{r.broken} broke")
        if r.reordered:
            notes.append(f"{r.reordered} out of order")
        note = f" ({', '.join(notes)})" if notes else ""
        yield (
            f"| {r.contender} | {r.layer} | {r.clients} ({r.connect_s:.0f}) "
            f"| {r.sent} ({r.frame_bytes:.0f}) "
            f"| {r.mean_share:.1%} ({r.worst_share:.1%}) "
            f"| {fmt(r.p50_ms)} / {fmt(r.p99_ms)} / {fmt(r.max_ms, '.0f')} "
            f"| {r.final}/{r.clients}{note} "
            f"| {cpu} ({fmt(1e6 / r.frames_per_cpu_s, '.1f')}) "
            f"| {r.kb_per_conn:.1f} | {fmt(vs_stock, '.2f')} | {fmt(vs_floor, '.2f')} "
            f"| {r.clients_cpu_s:.2f} "
            f"| {'—' if r.redis_cpu_s is None else f'{r.redis_cpu_s:.2f}'} |"
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Parse the arguments, run every case, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[500, 1000, 2000, 3000])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument(
        "--layers",
        nargs="+",
        choices=("memory", "core", "pubsub"),
        default=None,
        help="run only these layers (the floor runs regardless)",
    )
    parser.add_argument("--client-procs", type=int, default=0, help="0: 1 up to 1,000, else 2")
    parser.add_argument("--wave", type=int, default=100, help="handshakes at once, per process")
    parser.add_argument("--connect-timeout", type=float, default=90.0)
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=20.0,
        help="after connecting, how long the server may stay busy before the case fails",
    )
    parser.add_argument("--frame-bytes", type=int, default=2400, help="the floor's frame size")
    parser.add_argument("--deflate", action="store_true", help="viewers offer permessage-deflate")
    parser.add_argument(
        "--no-skip",
        action="store_true",
        help=(
            "run every N even after a case failed "
            f"(or the peer delivered under {SATURATED * 100:.0f} percent)"
        ),
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and clients")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    raise_fd_limit()
    # SIGTERM (timeout, kill) unwinds like Ctrl-C: every process stopped, the directory gone.
    signal.signal(signal.SIGTERM, _interrupt)
    directory = Path(tempfile.mkdtemp(prefix="liveops-fanout-"))
    bench = Bench(args, directory)
    cases = [
        (c, layer)
        for c, layer in CASES
        if c in args.contenders and (args.layers is None or c == "floor" or layer in args.layers)
    ]
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"uvicorn {uvicorn.__version__} (1 process, uvloop, httptools, websockets-sansio), "
        f"operation {args.seconds:g} s at THROTTLE_HZ 10, "
        f"viewers {'offer' if args.deflate else 'do not offer'} permessage-deflate, "
        + (
            f"server on CPU {bench.server_cpus}, viewers on CPU {bench.client_cpus}"
            if bench.server_cpus
            else "nothing pinned"
        ),
        flush=True,
    )
    if "peer" in args.contenders:
        print(f"# peer: {_peer.versions()}", flush=True)
    results: list[Result] = []
    interrupted = False
    begun = time.monotonic()
    try:
        given_up: dict[tuple[str, str], str] = {}
        for n in args.clients:
            for contender, layer in cases:
                if (contender, layer) in given_up:
                    # More viewers than it could serve already: not worth minutes of timeouts.
                    results.append(Result(contender, layer, n, error=given_up[contender, layer]))
                    continue
                case_begun = time.monotonic()
                result = asyncio.run(measure(bench, contender, layer, n))
                results.append(result)
                if args.no_skip:
                    pass
                elif result.error:
                    given_up[contender, layer] = f"not run: failed with {n:,} viewers"
                elif contender == "peer" and result.mean_share < SATURATED:
                    # Its connect-time snapshots grow as N²: more viewers take minutes.
                    given_up[contender, layer] = (
                        f"not run: with {n:,} viewers it delivered {result.mean_share:.0%}"
                    )
                print(
                    f"  done: {contender}/{layer}, N={n} ({time.monotonic() - case_begun:.0f} s, "
                    f"{result.plain:,} unstamped frames received)",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        print("interrupted: printing what was measured", file=sys.stderr)
        interrupted = True
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print("\n".join(table(results)))
    print(LEGEND.rstrip())
    print(f"\n# {time.monotonic() - begun:.0f} s in all", flush=True)
    if interrupted:
        raise SystemExit(130)


if __name__ == "__main__":
    main()
