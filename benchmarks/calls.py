"""Worker cost per progress call, and channel messages per operation, against the peer.

    .venv/bin/python benchmarks/calls.py [--budget 6] [--rounds 5]

Runs the same workload through this package (``execute()`` of the test app's
``Scripted`` operation) and through django-liveops 0.4.1 from PyPI (its own venv,
see ``_peer.py``; an operation model subclassing its ``LiveOperation`` in a
throwaway project generated here, started with ``op.enqueue()`` and its eager
runner, as its README shows), each with the in-memory layer and with the Redis
layer (a private ``redis-server`` on a free port). Every case runs in a child
process of its own, with ``THROTTLE_HZ`` = 10.

- **ns per call**: ``percent``, ``status``, ``log`` and one ``track`` item, timed
  inside ``run()``: ``--rounds`` rounds of N calls, median of the rounds. N is
  100,000, or fewer when a call is slow, so that one method takes about
  ``--budget`` seconds; the table says how many calls were timed. ``track`` always
  runs over 100,000 items (its cost per item depends on the length: the peer sends
  when the whole percent changes).
- **messages per operation**: every ``group_send`` and ``send`` of the process's
  channel layer is counted (a wrapper that calls the real method: the layer still
  sends), for an operation that logs 10,000 lines and tracks 10,000 items, and for
  one that sets the percent once, holds it 1 s and finishes.

In the in-memory case, our package is given a bound server loop (as a web process
with a viewer has); without one it skips in-memory sends altogether. Writes only
under a temporary directory in /tmp (and the peer venv, ``/tmp/liveops-peer-venv``
by default), removed at the end except the venv, which is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _peer  # noqa: E402
from _procs import Processes  # noqa: E402

SIDES = ("ours", "peer")
LAYERS = ("memory", "redis")
METHODS = ("percent", "status", "log", "track")
CHILD_TIMEOUT = 150.0
THROTTLE_HZ = 10

#: The measuring child: run by this venv's python (ours) or the peer venv's (peer).
CHILD = r"""
import json, os, statistics, sys, threading, time, asyncio

SIDE, LAYER, REDIS, DB = sys.argv[1:5]
BUDGET, ROUNDS = float(sys.argv[5]), int(sys.argv[6])
MAX_CALLS, LINES = int(sys.argv[7]), int(sys.argv[8])

import django
from django.conf import settings

if LAYER == "redis":
    layer = {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS, "socket_timeout": None, "max_connections": 1000}]},
    }
else:
    layer = {"BACKEND": "channels.layers.InMemoryChannelLayer"}
apps = ["django.contrib.auth", "django.contrib.contenttypes", "channels"]
if SIDE == "ours":
    apps += ["liveops", "tests.testapp"]
else:
    apps += ["channels_broadcast", "liveops", "peerapp"]
settings.configure(
    SECRET_KEY="liveops-benchmark-not-secret",
    USE_TZ=True,
    INSTALLED_APPS=apps,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    CHANNEL_LAYERS={"default": layer},
    LIVEOPS={"RUNNER": "eager", "THROTTLE_HZ": 10},
    LANGUAGE_CODE="en",
    # A project always has one: without it, rendering what links to a page would fail.
    ROOT_URLCONF="liveops.urls",
)
django.setup()
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.core.management import call_command

call_command("migrate", run_syncdb=True, verbosity=0)
owner = get_user_model().objects.create_user("bench")
channel_layer = get_channel_layer()
sent = [0]
for name in ("group_send", "send"):
    real = getattr(channel_layer, name)

    def counted(*args, _real=real, **kwargs):
        sent[0] += 1
        return _real(*args, **kwargs)

    setattr(channel_layer, name, counted)

if SIDE == "ours":
    from tests.testapp.models import Scripted as Model
    from liveops._execution import execute

    if LAYER == "memory":
        # A web process with a viewer has bound its server loop: in-memory sends go there.
        from liveops._publish import get_publisher

        server_loop = asyncio.new_event_loop()
        threading.Thread(target=server_loop.run_forever, daemon=True).start()
        get_publisher().bind_server_loop(server_loop)

    def run_operation(step):
        op = Model.objects.create(owner=owner)
        Model.SCRIPTS[op.pk] = [step]
        execute(op.live_label(), op.pk)
else:
    from peerapp.models import Bench as Model

    def run_operation(step):
        op = Model.objects.create(owner=owner)
        Model.STEPS[op.pk] = [step]
        op.enqueue()

calls = {}
medians = {}


def loop(p, method, n):
    if method == "percent":
        for i in range(n):
            p.percent(i % 100)
    elif method == "status":
        for _ in range(n):
            p.status("working")
    elif method == "log":
        for _ in range(n):
            p.log("a line")
    else:
        for _ in p.track(range(n)):
            pass


def timing(p):
    for method in ("percent", "status", "log", "track"):
        loop(p, method, 10)  # warm-up
        n = MAX_CALLS
        if method != "track":  # track's cost per item depends on the length: always MAX_CALLS
            n, took = 10, 0.0
            while took < 0.05 and n < MAX_CALLS:  # calibration: how many calls fit the budget
                n *= 4
                begun = time.perf_counter()
                loop(p, method, n)
                took = time.perf_counter() - begun
            n = max(10, min(MAX_CALLS, int(BUDGET / ROUNDS / (took / n))))
        samples = []
        for _ in range(ROUNDS):
            begun = time.perf_counter_ns()
            loop(p, method, n)
            samples.append((time.perf_counter_ns() - begun) / n)
        calls[method] = n
        medians[method] = statistics.median(samples)


def many(p):
    for i in range(LINES):
        p.log(f"line {i}")
    for _ in p.track(range(LINES)):
        pass


def held(p):
    p.percent(50)
    time.sleep(1.0)


def measured(step):
    before = sent[0]
    begun = time.monotonic()
    run_operation(step)
    elapsed = time.monotonic() - begun
    time.sleep(0.3)  # a send handed to another loop lands in the count
    return {"messages": sent[0] - before, "seconds": elapsed}


run_operation(timing)
result = {"ns": medians, "calls": calls, "many": measured(many), "held": measured(held)}
print(json.dumps(result))
"""

PEER_MODELS = """
from liveops.models import LiveOperation


class Bench(LiveOperation):
    STEPS = {}

    def run(self, p):
        for step in self.STEPS.get(self.pk, []):
            step(p)
"""


def run_case(
    side: str,
    layer: str,
    redis: str,
    directory: Path,
    args: argparse.Namespace,
    procs: Processes,
) -> dict[str, Any]:
    python = sys.executable if side == "ours" else str(_peer.python())
    path = [str(directory)] + ([str(ROOT), str(ROOT / "src")] if side == "ours" else [])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    db = directory / f"{side}-{layer}.sqlite3"
    proc = subprocess.Popen(
        [
            *(python, str(directory / "child.py"), side, layer, redis, str(db)),
            *(str(args.budget), str(args.rounds), str(args.max_calls), str(args.lines)),
        ],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    procs.started.append(proc)  # its output comes back through pipes: not procs.start()
    try:
        out, err = proc.communicate(timeout=CHILD_TIMEOUT)
    finally:
        procs.stop(proc)
    if proc.returncode:
        raise RuntimeError(f"{side}/{layer} failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def fmt_ns(value: float) -> str:
    return f"{value:,.0f}"


def table(
    results: dict[tuple[str, str], dict[str, Any]], layers: list[str], lines: int, rounds: int
) -> list[str]:
    rows = [
        "| case | layer | ours | django-liveops 0.4.1 | ours/theirs |",
        "|---|---|---|---|---|",
    ]
    for layer in layers:
        ours, peer = results.get(("ours", layer)), results.get(("peer", layer))
        for method in METHODS:
            label = "one `track` item" if method == "track" else f"`{method}`"
            cells = []
            for r in (ours, peer):
                if r is None:
                    cells.append("not run")
                else:
                    cells.append(
                        f"{fmt_ns(r['ns'][method])} ns ({r['calls'][method]:,} calls x {rounds})"
                    )
            ratio = (
                f"{ours['ns'][method] / peer['ns'][method]:.4f}"
                if ours is not None and peer is not None
                else "—"
            )
            rows.append(f"| ns per call, {label} | {layer} | {cells[0]} | {cells[1]} | {ratio} |")
        for key, label in (
            ("many", f"messages, {lines:,} log lines + {lines:,} tracked items"),
            ("held", "messages, one value held 1 s"),
        ):
            cells = []
            for r in (ours, peer):
                if r is None:
                    cells.append("not run")
                else:
                    m = r[key]
                    bound = THROTTLE_HZ * m["seconds"] + 5
                    cells.append(f"{m['messages']:,} in {m['seconds']:.2f} s (bound {bound:.0f})")
            ratio = (
                f"{ours[key]['messages'] / max(1, peer[key]['messages']):.4f}"
                if ours is not None and peer is not None
                else "—"
            )
            rows.append(f"| {label} | {layer} | {cells[0]} | {cells[1]} | {ratio} |")
    return rows


def main() -> None:
    """Set up, run the four cases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=6.0, help="seconds per timed method")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-calls", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS))
    args = parser.parse_args()
    peer_python = _peer.python() if "peer" in args.sides else None
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"THROTTLE_HZ {THROTTLE_HZ}, {args.rounds} rounds, ~{args.budget:g} s per method",
        flush=True,
    )
    if peer_python is not None:
        print(f"# peer ({peer_python}): {_peer.versions()}", flush=True)
    directory = Path(tempfile.mkdtemp(prefix="liveops-calls-"))
    procs = Processes(directory, start_timeout=10)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    interrupted = False
    try:
        (directory / "child.py").write_text(CHILD)
        (directory / "peerapp").mkdir()
        (directory / "peerapp" / "__init__.py").write_text("")
        (directory / "peerapp" / "models.py").write_text(PEER_MODELS)
        redis = procs.start_redis()[1] if "redis" in args.layers else ""
        for layer in args.layers:
            for side in args.sides:
                begun = time.monotonic()
                results[(side, layer)] = run_case(side, layer, redis, directory, args, procs)
                print(
                    f"  done: {side}, {layer} ({time.monotonic() - begun:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        print("interrupted: printing what was measured", file=sys.stderr)
        interrupted = True
    finally:
        procs.stop_all()
        shutil.rmtree(directory, ignore_errors=True)
    print("\n".join(table(results, args.layers, args.lines, args.rounds)))
    if interrupted:
        raise SystemExit(130)


if __name__ == "__main__":
    main()
