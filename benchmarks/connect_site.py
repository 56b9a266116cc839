"""The site ``freshness.py`` and ``connect.py`` measure, for this package and for the peer.

One module, run by this repo's venv (``LIVEOPS_BENCH_SIDE=ours``) or by the peer's
(``LIVEOPS_BENCH_SIDE=peer``: django-liveops 0.4.1, see ``_peer.py``), configured
through the environment (``LIVEOPS_BENCH_DB``, ``LIVEOPS_BENCH_LAYER`` = ``core`` or
``memory``, ``LIVEOPS_BENCH_REDIS``, ``LIVEOPS_BENCH_POOL`` = the Redis pool's
``max_connections``, empty for redis-py's default, ``LIVEOPS_BENCH_OWNER`` and
``LIVEOPS_BENCH_USERNAME``).
The peer's side needs an app holding its operation model; ``write_peer_app()``
generates it in a temporary directory that goes on the peer's ``PYTHONPATH``.

- as ``DJANGO_SETTINGS_MODULE=connect_site``;
- as the ASGI application of a server process
  (``uvicorn --factory connect_site:ready_application``, which sets Django up before
  listening, as a project's asgi.py does),
  serving each package's own consumer and routing: ``/ws/liveops/`` (ours) or
  ``/asgi/notifications/`` (the peer) with every socket made the owner (no session
  lookup, like ``layer_site.py``), and the same paths under ``/auth/`` behind the
  middleware each package's docs put in front of it (ours, from the README:
  ``AllowedHostsOriginValidator(SessionMiddlewareStack(...))``, the sockets presenting
  the view grant a page would give them; the peer's routing docstring:
  ``AuthMiddlewareStack(...)``). ``POST /bench/run`` runs one worker
  command (below) in a thread of the server process, for the in-memory layer;
- as a script: ``setup N`` creates the database, the owner, a logged-in session and
  N operations and prints them as JSON; ``worker`` reads commands (JSON, one a line)
  on stdin and answers each on stdout; ``queries N`` counts the queries of N
  WebSocket connects in this process (asgiref's ``ApplicationCommunicator``);
- as a library for the two benchmarks: ``Stack`` starts Redis, the database, the
  server and the worker of one side in a temporary directory and stops them.

Worker commands: ``{"mode": "fresh", "pk": ..., "plan": [[value, at], ...]}`` sets
each percent ``value`` at ``at`` seconds from the start and answers each call's
``time.monotonic()``; ``{"mode": "result", "pk": ...}`` sets three percents, then
the result, and answers when the terminal state committed (the first
``transaction.on_commit`` callback after ``p.result()``: ours runs the terminal send
there, the peer registers its send after its autocommit ``save()``);
``{"mode": "run", "pks": [...], "every": S}`` starts those operations, each setting a
new percent every S seconds until the worker exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from _procs import Processes

# --- settings ----------------------------------------------------------------------------

SIDE = os.environ.get("LIVEOPS_BENCH_SIDE", "ours")
SECRET_KEY = "liveops-benchmark-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    *(
        ["liveops", "tests.testapp"]
        if SIDE == "ours"
        else ["channels_broadcast", "liveops", "peerapp"]
    ),
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("LIVEOPS_BENCH_DB", "/tmp/liveops-connect.sqlite3"),
        # Snapshots are read while the worker writes: WAL lets them do both.
        "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en"

_HOST: dict[str, Any] = {
    "address": os.environ.get("LIVEOPS_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
    "socket_timeout": None,
}
if os.environ.get("LIVEOPS_BENCH_POOL"):  # unset: redis-py's default pool (100)
    _HOST["max_connections"] = int(os.environ["LIVEOPS_BENCH_POOL"])
CHANNEL_LAYERS = {
    "default": (
        {"BACKEND": "channels.layers.InMemoryChannelLayer"}
        if os.environ.get("LIVEOPS_BENCH_LAYER", "core") == "memory"
        else {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [_HOST]}}
    )
}
LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 10}

#: The peer's operation model, in an app generated at run time (``write_peer_app``).
PEER_MODELS = """
from liveops.models import LiveOperation


class Bench(LiveOperation):
    STEPS = {}

    def run(self, p):
        for step in self.STEPS.get(self.pk, []):
            step(p)
"""

#: The WebSocket path of each side's own routing.
WS_PATHS = {"ours": "/ws/liveops/", "peer": "/asgi/notifications/"}


def write_peer_app(directory: Path) -> None:
    """Write the peer's ``peerapp`` package into ``directory``."""
    (directory / "peerapp").mkdir(exist_ok=True)
    (directory / "peerapp" / "__init__.py").write_text("")
    (directory / "peerapp" / "models.py").write_text(PEER_MODELS)


def is_snapshot(side: str, html: str) -> bool:
    """Return whether a frame's HTML is the state a socket gets on connect.

    Ours sends every region, the result region included, which live frames of a
    running operation lack. The peer's snapshot of a running operation is its status
    fragment; the operations here never set a status while running.
    """
    return "liveops-result" in html if side == "ours" else 'id="op-status"' in html


def frame_html(text: str) -> str:
    """Return the HTML a frame carries (empty for other messages)."""
    try:
        payload = json.loads(text)
    except ValueError:
        return ""
    html = payload.get("liveop_html") if isinstance(payload, dict) else None
    return html if isinstance(html, str) else ""


# --- ASGI application --------------------------------------------------------------------

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass
class _Apps:
    plain: ASGIApp
    auth: ASGIApp
    owner: Any


_apps: _Apps | None = None


def _build() -> _Apps:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connect_site")
    import django

    django.setup()
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter
    from channels.sessions import SessionMiddlewareStack
    from django.contrib.auth import get_user_model

    from liveops.routing import websocket_urlpatterns

    router = URLRouter(websocket_urlpatterns)
    if SIDE == "ours":  # as our README shows
        from channels.security.websocket import AllowedHostsOriginValidator

        auth: ASGIApp = AllowedHostsOriginValidator(SessionMiddlewareStack(router))
    else:  # as the peer's liveops/routing.py shows
        auth = AuthMiddlewareStack(router)
    # Unsaved, with the owner's pk and username: neither side queries for it.
    owner = get_user_model()(
        pk=int(os.environ.get("LIVEOPS_BENCH_OWNER", "1")),
        username=os.environ.get("LIVEOPS_BENCH_USERNAME", "bench"),
    )
    return _Apps(router, auth, owner)


def ready_application() -> ASGIApp:
    """Set Django up and return ``application`` (``uvicorn --factory``).

    As a project's asgi.py does at import, before the server listens, so that the
    first connects after a restart do not pay for ``django.setup()``.
    """
    global _apps
    if _apps is None:
        _apps = _build()
    return application


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Route WebSockets (plain or under ``/auth/``) and ``POST /bench/run``."""
    global _apps
    if _apps is None:
        _apps = _build()
    if scope["type"] == "websocket":
        path = scope["path"]
        if path.startswith("/auth/"):
            await _apps.auth(dict(scope, path=path[len("/auth") :]), receive, send)
        else:
            await _apps.plain(dict(scope, user=_apps.owner), receive, send)
    elif scope["type"] == "http":
        await _http(scope, receive, send)
    else:
        raise RuntimeError(f"this benchmark site serves no {scope['type']!r}")


async def _http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] != "/bench/run" or scope["method"] != "POST":
        status, answer = 404, {"error": "not found"}
    else:
        status, answer = 200, await asyncio.to_thread(_perform_closing, json.loads(body))
    data = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


# --- operations: what the worker (or the server, in-memory) runs -------------------------

#: When each ``transaction.on_commit`` callback of this process ran (``install_commit_clock``).
COMMITS: list[float] = []
_clock_installed: list[bool] = []
_clock_lock = threading.Lock()


def install_commit_clock() -> None:
    """Record ``time.monotonic()`` as each on-commit callback starts (after the commit)."""
    from django.db import transaction

    real = transaction.on_commit

    def on_commit(func: Callable[[], Any], using: str | None = None, robust: bool = False) -> None:
        def clocked() -> Any:
            COMMITS.append(time.monotonic())
            return func()

        real(clocked, using=using, robust=robust)

    transaction.on_commit = on_commit  # type: ignore[assignment]


def _run_operation(pk: str, step: Callable[[Any], None]) -> None:
    """Run operation ``pk`` with ``step`` as its ``run()``, the way each package starts one."""
    if SIDE == "ours":
        from tests.testapp.models import Scripted

        from liveops._execution import execute

        Scripted.SCRIPTS[uuid.UUID(pk)] = [step]
        execute(Scripted.live_label(), pk)
    else:
        from peerapp.models import Bench  # type: ignore[import-not-found]

        op = Bench.objects.get(pk=pk)
        Bench.STEPS[op.pk] = [step]
        op.enqueue()  # its eager runner: run() here, now


def _fresh(pk: str, plan: list[list[float]]) -> dict[str, Any]:
    calls: list[tuple[int, float]] = []

    def step(p: Any) -> None:
        begun = time.monotonic()
        for value, at in plan:
            # On a fixed timeline, so both packages see the same intervals.
            delay = begun + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            calls.append((int(value), time.monotonic()))
            p.percent(int(value))
        p.result(updates=len(plan))

    _run_operation(pk, step)
    return {"calls": calls}


def _result(pk: str) -> dict[str, Any]:
    marks: dict[str, int] = {}

    def step(p: Any) -> None:
        for value in (10, 20, 30):  # a throttled update is pending when the result comes
            p.percent(value)
            time.sleep(0.01)
        marks["commits"] = len(COMMITS)
        p.result(answer=42)

    _run_operation(pk, step)
    return {"commit": COMMITS[marks["commits"]]}


def _start_many(pks: list[str], every: float) -> dict[str, Any]:
    def ticking(p: Any) -> None:
        n = 0
        while True:  # until the worker exits: the threads are daemons
            n += 1
            p.percent(n % 100 + 1)  # always a new value: the peer sends only changes
            time.sleep(every)

    for i, pk in enumerate(pks):
        threading.Thread(target=_run_closing, args=(pk, ticking), daemon=True).start()
        if i < len(pks) - 1:
            time.sleep(every / len(pks))  # spread the ticks
    return {"started": len(pks)}


def _run_closing(pk: str, step: Callable[[Any], None]) -> None:
    from django.db import connections

    try:
        _run_operation(pk, step)
    finally:
        connections.close_all()  # this thread's connections only


def _perform(command: dict[str, Any]) -> dict[str, Any]:
    mode = command["mode"]
    if mode == "fresh":
        return _fresh(command["pk"], command["plan"])
    if mode == "result":
        return _result(command["pk"])
    if mode == "run":
        return _start_many(command["pks"], command["every"])
    raise ValueError(f"unknown command {mode!r}")


def _perform_closing(command: dict[str, Any]) -> dict[str, Any]:
    from django.db import connections

    with _clock_lock:
        if not _clock_installed:
            install_commit_clock()
            _clock_installed.append(True)
    try:
        return _perform(command)
    finally:
        connections.close_all()


def _worker() -> None:
    install_commit_clock()
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_perform(json.loads(line))), flush=True)


# --- setup and query counting ------------------------------------------------------------


def _setup(count: int) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", run_syncdb=True, verbosity=0)
    owner = get_user_model()._default_manager.create_user(f"bench-{uuid.uuid4().hex[:8]}")
    client = Client()
    client.force_login(owner)
    from django.conf import settings

    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    if SIDE == "ours":
        from tests.testapp.models import Scripted

        from liveops import _grants as grants

        ops = [Scripted._default_manager.create(owner=owner) for _ in range(count)]
        # As the page does: the token with its view grant for this user and session.
        paths = [
            f"{WS_PATHS[SIDE]}?op={op.live_token}~{grants.issue(op.live_token, owner, session)}"
            for op in ops
        ]
        ungranted = [f"{WS_PATHS[SIDE]}?op={op.live_token}" for op in ops]
    else:
        from peerapp.models import Bench

        ops = [Bench.objects.create(owner=owner) for _ in range(count)]
        paths = [
            f"{WS_PATHS[SIDE]}?subscription_token={quote(op.subscription_token)}" for op in ops
        ]
        ungranted = paths  # the peer has no grants
    print(
        json.dumps(
            {
                "owner": owner.pk,
                "username": owner.get_username(),
                "session": session,
                "pks": [str(op.pk) for op in ops],
                "paths": paths,
                "ungranted": ungranted,
            }
        )
    )


#: Every SQL statement this process ran since ``count_queries()`` (any thread).
QUERIES: list[str] = []


def count_queries() -> None:
    """Record every statement of every database connection, in whatever thread it runs.

    ``CaptureQueriesContext`` sees one thread's connection only, and the consumers
    query from asgiref's thread for sync code (the communicator runs the application
    in a fresh context), so each connection gets an execute wrapper instead.
    """
    from django.db import connections
    from django.db.backends.signals import connection_created

    def counting(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        QUERIES.append(sql)
        return execute(sql, params, many, context)

    def wrap(connection: Any, **kwargs: Any) -> None:
        if counting not in connection.execute_wrappers:  # reconnects reuse the wrapper
            connection.execute_wrappers.append(counting)

    connection_created.connect(wrap, weak=False)
    for connection in connections.all(initialized_only=True):
        wrap(connection)


def _queries(count: int) -> None:
    """Count the queries of ``count`` connects (after one warm-up), plain and behind auth."""
    import io

    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator
    from django.conf import settings

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _setup(1)
    created = json.loads(out.getvalue())
    os.environ["LIVEOPS_BENCH_OWNER"] = str(created["owner"])
    os.environ["LIVEOPS_BENCH_USERNAME"] = created["username"]
    cookie = f"{settings.SESSION_COOKIE_NAME}={created['session']}".encode()
    headers = [(b"cookie", cookie), (b"origin", b"http://127.0.0.1")]
    count_queries()

    # channels.testing would import daphne, which the peer's venv lacks: the same
    # communicator, from asgiref, with the scope WebsocketCommunicator builds.
    async def connect_once(path: str) -> tuple[int, int]:
        before = len(QUERIES)
        location, _, query = path.partition("?")
        scope = {
            "type": "websocket",
            "path": location,
            "query_string": query.encode(),
            "headers": headers,
            "subprotocols": [],
        }
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "websocket.connect"})
        accepted = await communicator.receive_output(10)
        assert accepted["type"] == "websocket.accept", f"{SIDE} refused {path}: {accepted}"
        while True:
            sent = await communicator.receive_output(10)
            assert sent["type"] == "websocket.send", f"{SIDE} closed {path}: {sent}"
            if is_snapshot(SIDE, frame_html(sent.get("text", ""))):
                break
        held = len(QUERIES)  # connect + snapshot
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(10)
        return before, held

    results: dict[str, Any] = {}
    for routing, prefix, paths in (
        ("plain", "", "paths"),
        ("auth", "/auth", "paths"),
        ("nogrant", "/auth", "ungranted"),
    ):
        counts: list[int] = []
        for n in range(count + 1):
            before, held = async_to_sync(connect_once)(prefix + created[paths][0])
            if n:
                counts.append(held - before)
                results[f"{routing}_sql"] = QUERIES[before:held]
            else:  # the first connect warms caches (content types, templates)
                results[f"{routing}_first"] = held - before
        results[routing] = counts
    print(json.dumps(results))


def main(argv: list[str]) -> None:
    """Run ``setup N``, ``worker`` or ``queries N`` (see the module docstring)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connect_site")
    import django

    django.setup()
    if argv[:1] == ["setup"] and len(argv) == 2:
        _setup(int(argv[1]))
    elif argv == ["worker"]:
        _worker()
    elif argv[:1] == ["queries"] and len(argv) == 2:
        _queries(int(argv[1]))
    else:
        raise SystemExit("usage: connect_site.py setup N | worker | queries N")


# --- the harness side: processes of one side, in a temporary directory -------------------

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def peer_python() -> str:
    """Return the peer venv's python, with the server pieces this site needs in it.

    ``_peer.py`` installs the peer alone; a server process of its own needs uvicorn
    and websockets, pinned to the versions serving ours.
    """
    from importlib import metadata

    import _peer

    python = str(_peer.python())
    probe = subprocess.run([python, "-c", "import uvicorn, websockets"], capture_output=True)
    if probe.returncode:
        pins = [f"{name}=={metadata.version(name)}" for name in ("uvicorn", "websockets")]
        print(f"# installing {', '.join(pins)} into the peer venv", file=sys.stderr, flush=True)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
            check=True,
            env={**os.environ, "PIP_NO_INPUT": "1"},
        )
    return python


class Stack(Processes):
    """Redis, and per side a database, server processes and a worker; all stopped on exit."""

    def __init__(self, prefix: str) -> None:
        # Its servers get 10 s from SIGTERM to SIGKILL (5 elsewhere), as they always had.
        super().__init__(Path(tempfile.mkdtemp(prefix=prefix)), stop_wait=10.0)
        self.redis_url = ""
        self._peer_python: str | None = None
        write_peer_app(self.directory)

    def python(self, side: str) -> str:
        if side == "ours":
            return sys.executable
        if self._peer_python is None:
            self._peer_python = peer_python()
        return self._peer_python

    def start_redis(self, name: str = "redis") -> tuple[subprocess.Popen[bytes], str]:
        """Start the private redis-server every process of this stack uses."""
        proc, self.redis_url = super().start_redis(name)
        return proc, self.redis_url

    def env(self, side: str, layer: str, db: str, pool: int | None = 1000) -> dict[str, str]:
        """Return the environment of one side's processes."""
        path = [str(HERE), str(ROOT)] if side == "ours" else [str(HERE), str(self.directory)]
        if side == "ours" and os.environ.get("PYTHONPATH"):
            # Ahead of the venv's editable install: a run can measure another copy of
            # the package (e.g. ``git archive`` of a commit, while src/ is being edited).
            path.append(os.environ["PYTHONPATH"])
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "connect_site",
            "PYTHONPATH": os.pathsep.join(path),
            "PYTHONDONTWRITEBYTECODE": "1",  # write nothing outside the temporary directory
            "LIVEOPS_BENCH_SIDE": side,
            "LIVEOPS_BENCH_DB": str(self.directory / f"{db}.sqlite3"),
            "LIVEOPS_BENCH_LAYER": layer,
            "LIVEOPS_BENCH_REDIS": self.redis_url,
            "LIVEOPS_BENCH_POOL": "" if pool is None else str(pool),
        }
        return env

    def package(self, side: str) -> str:
        """Return where ``side``'s processes import ``liveops`` from, and its version."""
        code = "import importlib.metadata as m, liveops; print(liveops.__file__)"
        if side == "peer":
            code += "; print('django-liveops', m.version('django-liveops'))"
        done = subprocess.run(
            [self.python(side), "-c", code],
            env=self.env(side, "memory", "probe"),
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().replace("\n", ", ")

    def run(self, side: str, env: dict[str, str], *args: str, timeout: float = 120) -> Any:
        """Run ``connect_site.py ARGS`` to its end; return the JSON it printed last."""
        done = subprocess.run(
            [self.python(side), "connect_site.py", *args],
            cwd=HERE,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(f"{side} {args} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def setup(self, side: str, env: dict[str, str], count: int) -> dict[str, Any]:
        """Create the database and ``count`` operations; point ``env`` at their owner."""
        created: dict[str, Any] = self.run(side, env, "setup", str(count))
        env["LIVEOPS_BENCH_OWNER"] = str(created["owner"])
        env["LIVEOPS_BENCH_USERNAME"] = created["username"]
        return created

    def server_args(self, side: str, port: int) -> list[str]:
        """Return the command line of one uvicorn process of ``side`` on ``port``."""
        return [
            *(self.python(side), "-m", "uvicorn", "--factory", "connect_site:ready_application"),
            *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"),
            *("--log-level", "warning", "--no-access-log"),
        ]

    def start_server(
        self, side: str, env: dict[str, str], port: int, name: str
    ) -> subprocess.Popen[bytes]:
        """Start one uvicorn process and wait until it listens."""
        proc = self.start(name, self.server_args(side, port), env)
        self.wait_for_port(proc, name, port)
        return proc

    async def start_worker(self, side: str, env: dict[str, str], name: str) -> Worker:
        # Not tracked: ``Worker.close`` ends it, in the event loop that ``close`` outlives.
        proc = await self.start_piped(
            name, [self.python(side), "connect_site.py", "worker"], env, track=False
        )
        return Worker(proc)

    def close(self, *, keep: bool = False) -> None:
        """Stop every process; remove the directory unless asked to ``keep`` it (its logs)."""
        self.stop_all()
        if keep:
            print(f"# kept {self.directory}", file=sys.stderr)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)

    def redis_info(self, section: str) -> dict[str, str]:
        """Return one section of Redis's INFO, as a dict."""
        import socket

        host, _, port = self.redis_url.removeprefix("redis://").partition("/")[0].partition(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(f"INFO {section}\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                data += sock.recv(65536)
            head, _, body = data.partition(b"\r\n")  # a bulk string: $LENGTH, then the text
            while len(body) < int(head[1:]) + 2:
                body += sock.recv(65536)
        lines = body.decode().split("\r\n")
        return dict(line.split(":", 1) for line in lines if ":" in line)


class Worker:
    """A worker process: one JSON command a line in, one JSON answer a line out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def command(self, command: dict[str, Any], seconds: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), seconds)
        if not line:
            raise RuntimeError(f"the worker exited ({await self.proc.wait()}) on {command['mode']}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()


async def post_command(port: int, command: dict[str, Any], seconds: float = 120) -> dict[str, Any]:
    """Run a worker command in the server process (``POST /bench/run``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps(command).encode()
    writer.write(
        b"POST /bench/run HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), seconds)
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/bench/run failed: {response[:500]!r}")
    answer: dict[str, Any] = json.loads(payload)
    return answer


if __name__ == "__main__":
    main(sys.argv[1:])
