"""Processes and viewers of the end-to-end stack test (tests/test_e2e_stack.py).

Every process listens on, or talks to, loopback only; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import lxml.html
import pytest

from tests.dom import Page
from tests.pg_workers import WorkerProcess, database_name, python, wait_for, worker_env

#: Heartbeat and stale timeout of every process of the stack (tests/settings.py reads them).
BEAT, STALE = 0.2, 1.0
#: How long a process may take to answer after it was started.
START_TIMEOUT = 30.0
#: How long a viewer may take to show what the worker just did.
SHOW_TIMEOUT = 10.0

# Loopback only: never through a proxy the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, cookie: str = "", timeout: float = 5.0) -> tuple[int, str]:
    """GET ``url`` (with a Cookie header when given); return the status and the body."""
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with _OPENER.open(request, timeout=timeout) as response:
        return response.status, response.read().decode()


def answers(url: str) -> bool:
    """Return whether ``url`` answers 200 now."""
    try:
        return http_get(url, timeout=1.0)[0] == 200
    except OSError:
        return False


# --- processes -----------------------------------------------------------------------


class Server:
    """An ASGI server process (uvicorn, daphne or hypercorn) serving tests.asgi_stack."""

    def __init__(self, kind: str, env: dict[str, str], port: int | None = None) -> None:
        self.kind = kind
        self.port = port or free_port()  # a port of its own, or the one it is restarted on
        self.url = f"http://127.0.0.1:{self.port}"
        app = "tests.asgi_stack:application"
        if kind == "uvicorn":
            argv = python(
                *("-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port)),
                *("--lifespan", "on", "--log-level", "warning"),
            )
        elif kind == "daphne":
            argv = python(
                *("-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "-v", "1", app)
            )
        elif kind == "hypercorn":
            argv = python("-m", "hypercorn", "--bind", f"127.0.0.1:{self.port}", app)
        else:
            raise ValueError(f"unknown server {kind!r}")
        self.process = WorkerProcess(kind, argv, env)

    def wait_until_ready(self) -> None:
        """Wait until it serves the client script (which proves static files work too)."""
        wait_for(
            lambda: answers(f"{self.url}/static/liveops/liveops.js"),
            START_TIMEOUT,
            f"{self.kind} serves /static/liveops/liveops.js on {self.url}",
            watch=[self.process],
        )


class PrivateRedis:
    """A redis-server of this test's own, on a loopback port; stopped and restarted at will."""

    def __init__(self, executable: str, port: int, log_path: Path) -> None:
        self.executable, self.port, self.log_path = executable, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        """Start redis-server and return once it answers PING (or fail with its log)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(self.executable, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.log_path.parent)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._pong():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not answer on {self.port}:\n{self.log_tail()}")
            time.sleep(0.02)  # polling the port, under the deadline above

    def stop(self) -> None:
        """Kill the server and wait until the port refuses connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test froze it
            self.proc.kill()  # an outage, not a shutdown: no goodbye to clients
            self.proc.wait(START_TIMEOUT)
        self.proc = None
        deadline = time.monotonic() + START_TIMEOUT
        while self._pong():
            assert time.monotonic() < deadline, f"port {self.port} still answers"
            time.sleep(0.02)

    def freeze(self) -> None:
        """Stop the server answering, connections left open (a hung host, a partition)."""
        assert self.proc is not None
        assert self.proc.poll() is None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server answer again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log_tail(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        return "(no log)"


def celery_worker(queue: str, env: dict[str, str]) -> tuple[WorkerProcess, str]:
    """Start a solo Celery worker reading ``queue``; return it and its node name."""
    node = f"{queue}@{socket.gethostname()}"
    process = WorkerProcess(
        f"celery worker {queue}",
        python(
            *("-m", "celery", "-A", "tests.celery_app", "worker", "-Q", queue, "-n", node),
            *("--pool=solo", "--concurrency=1", "--loglevel=INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ),
        env,
    )
    return process, node


def wait_for_celery(app: Any, node: str, process: WorkerProcess) -> None:
    """Wait until the Celery worker ``node`` answers a ping."""
    wait_for(
        lambda: app.control.ping(destination=[node], timeout=0.5),
        START_TIMEOUT,
        f"the celery worker {node} answers a ping",
        watch=[process],
    )


def db_worker(queue: str, env: dict[str, str]) -> WorkerProcess:
    """Start django-tasks-db's db_worker reading ``queue``."""
    return WorkerProcess(
        f"db_worker {queue}",
        python(
            *("-m", "django", "db_worker", "--queue-name", queue),
            *("--interval", "0.1", "--no-startup-delay", "--no-reload", "--verbosity", "2"),
        ),
        env,
    )


def wait_for_db_worker(process: WorkerProcess) -> None:
    """Wait until the db_worker says it started."""
    process.wait_for_output(r"Starting worker", timeout=START_TIMEOUT)


def kill(process: WorkerProcess) -> None:
    """SIGKILL ``process`` (no chance to say goodbye) and wait until it is gone."""
    os.kill(process.pid, signal.SIGKILL)
    wait_for(lambda: process.returncode is not None, 10, f"{process.name} is gone")
    assert process.returncode == -signal.SIGKILL, process.returncode


def logs(processes: list[WorkerProcess], lines: int = 30) -> str:
    """Return the last lines of each process's output, for a failure message."""
    parts = []
    for process in processes:
        with contextlib.suppress(OSError):
            tail = "\n".join(process.output().splitlines()[-lines:])
            parts.append(f"\n--- {process.name} (exit {process.returncode}) ---\n{tail}")
    return "".join(parts)


# --- a viewer without a browser ---------------------------------------------------------


class SocketViewer:
    """A WebSocket client that watches an operation's live page as liveops.js would.

    It loads the page from a server (with a session cookie), connects to the socket the
    page names, and applies every frame to its copy of the page with tests/dom.py, the
    Python model of the client's rules (docs/protocol.md).
    """

    def __init__(self, base_url: str, path: str, cookie: str) -> None:
        from websockets.sync.client import connect

        status, html = http_get(base_url + path, cookie)
        assert status == 200, f"GET {path} on {base_url} answered {status}"
        self.page = Page(lxml.html.fromstring(html))
        containers = self.page.root.xpath("//*[@data-liveop]")
        assert len(containers) == 1, f"{path} has {len(containers)} live containers"
        self.container_id = containers[0].get("id")
        token, ws_path = containers[0].get("data-liveop"), containers[0].get("data-liveop-ws")
        self.frames: list[str] = []
        self._closing = contextlib.ExitStack()
        self.socket = self._closing.enter_context(
            connect(
                f"ws://{urlsplit(base_url).netloc}{ws_path}?op={quote(token, safe='')}",
                origin=base_url,  # type: ignore[arg-type]
                additional_headers={"Cookie": cookie},
                open_timeout=10,
                close_timeout=2,
                max_queue=None,  # frames wait here while the test looks at Chromium
            )
        )

    def text(self, region: str) -> str:
        """Return the text of one region, whitespace collapsed."""
        element = self.page.find(f"{self.container_id}-{region}")
        assert element is not None, f"no region {region!r} in the page"
        return " ".join(element.text_content().split())

    def pump(self, timeout: float) -> None:
        """Apply the frames that arrive within ``timeout`` seconds (and any already there)."""
        wait = timeout
        while True:
            try:
                text = self.socket.recv(timeout=wait)
            except TimeoutError:
                return
            assert isinstance(text, str), f"a binary frame: {text!r}"
            self.frames.append(text)
            self.page.apply_frame(text)
            wait = 0

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        """Receive frames until ``condition()`` holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting until {what}; "
                    f"{len(self.frames)} frame(s), the last: {self.frames[-1:]}"
                )
            self.pump(0.05)

    def close(self) -> None:
        """Close the socket (bounded by close_timeout)."""
        self._closing.close()


# --- a database that restarts under a worker ------------------------------------------------


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset, as a server that went away does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    """A loopback TCP proxy to ``target``, cut and restored by a test: a restart, as clients see it.

    ``cut()`` resets every open connection at once; until ``restore()`` a new connection
    is accepted and reset at once (PostgreSQL starting up answers so too), and counted in
    ``turned_away``, so a test can wait until a client met the outage. One thread serves
    every connection; the data it carries (SQL of a test's worker) is small.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.turned_away = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._peers: dict[socket.socket, socket.socket] = {}
        self._selector = selectors.DefaultSelector()
        self._wake, self._waker = socket.socketpair()
        self._cutting = threading.Event()
        self._cut_done = threading.Event()
        self._is_cut = False
        self._running = True
        self._thread = threading.Thread(target=self._serve, name=f"tcp-proxy-{self.port}")
        self._thread.start()

    def cut(self) -> None:
        """Reset every connection now, and every new one until ``restore()``."""
        self._cut_done.clear()
        self._cutting.set()
        self._waker.send(b"x")
        assert self._cut_done.wait(START_TIMEOUT), "the proxy did not cut its connections"

    def restore(self) -> None:
        """Carry new connections to the target again."""
        self._is_cut = False

    def close(self) -> None:
        """Stop the proxy and reset whatever it still carries."""
        self._running = False
        self._waker.send(b"x")
        self._thread.join(START_TIMEOUT)
        for sock in list(self._peers):
            _reset(sock)
        self._listener.close()
        self._wake.close()
        self._waker.close()

    def _serve(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake, selectors.EVENT_READ, "wake")
        while self._running:
            for key, _ in self._selector.select(timeout=1.0):
                if key.data == "wake":
                    self._wake.recv(64)
                    if self._cutting.is_set():
                        self._cutting.clear()
                        self._is_cut = True
                        for sock in list(self._peers):
                            self._drop(sock, reset=True)
                        self._cut_done.set()
                elif key.data == "accept":
                    self._accept()
                else:
                    self._carry(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if self._is_cut:
            self.turned_away += 1
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=START_TIMEOUT)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        self._peers[client], self._peers[upstream] = upstream, client
        for sock in (client, upstream):
            self._selector.register(sock, selectors.EVENT_READ, "carry")

    def _carry(self, sock: socket.socket) -> None:
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock, reset=False)

    def _drop(self, sock: socket.socket, *, reset: bool) -> None:
        """Close ``sock`` and its peer (with a reset when cut, else as the other side did)."""
        peer = self._peers.pop(sock, None)
        for each in (sock, peer):
            if each is None:
                continue
            self._peers.pop(each, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(each)
            if reset:
                _reset(each)
            else:
                each.close()


# --- the test process's side of a stack ----------------------------------------------------


def enqueue_through(op: Any, runner: str, queue: str, settings: Any, **liveops: Any) -> None:
    """Enqueue ``op`` from this process through ``runner`` to ``queue``, once this commits.

    ``liveops`` adds to the ``LIVEOPS`` setting this process enqueues with, which has the
    stack's heartbeat and stale timeout.
    """
    from django.db import transaction

    import tests.celery_app  # noqa: F401  the project's Celery app, as its package imports it

    settings.LIVEOPS = {
        "RUNNER": runner,
        "CELERY_TASK_OPTIONS": {"queue": queue},
        "TASKS_OPTIONS": {"queue_name": queue},
        "HEARTBEAT_SECONDS": BEAT,
        "STALE_SECONDS": STALE,
        **liveops,
    }
    with transaction.atomic():
        op.enqueue()


def forget_redis_keys(url: str, prefix: str) -> None:
    """Delete a test's keys, and Celery's unacknowledged messages of its queues."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(f"*{prefix}*"))
        if keys:
            client.delete(*keys)
        # A killed worker leaves its message in kombu's "unacked" hash (acks_late).
        for tag, message in client.hscan_iter("unacked"):
            if prefix.encode() in message:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


def stack_env(layer_url: str, prefix: str, **knobs: str) -> dict[str, str]:
    """Return the environment of a stack's server or worker process.

    tests.settings_stack on the test database, the channel layer at ``layer_url`` with
    key ``prefix``, and ``knobs`` (``LIVEOPS_TEST_*``, see tests/settings_stack.py).
    """
    env = worker_env(database_name())
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the test process only (Playwright)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings_stack",
        LIVEOPS_TEST_LAYER_URL=layer_url,
        LIVEOPS_TEST_LAYER_PREFIX=prefix,
        **knobs,
    )
    return env


def stop_all(processes: list[WorkerProcess]) -> None:
    """Stop the processes at once (each: SIGTERM, then SIGKILL after 10 s)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(processes))) as pool:
        list(pool.map(lambda process: process.stop(), processes))


def session_cookie(user: Any) -> tuple[str, str]:
    """Log ``user`` in; return the session cookie's name and value, for a browser or a socket."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return name, client.cookies[name].value


class SocketFrames:
    """The text frames each WebSocket of a Playwright page received, a list per socket.

    Sockets are listed in the order the page opened them (a handshake that failed has
    none). The first frame of a live page's socket is its snapshot: the consumer sends it
    before any live frame.
    """

    def __init__(self, page: Any) -> None:
        self.page = page
        self.sockets: list[list[str]] = []
        page.on("websocket", self._opened)

    def _opened(self, websocket: Any) -> None:
        frames: list[str] = []
        self.sockets.append(frames)
        websocket.on("framereceived", lambda payload: frames.append(payload))

    def first_frame(self, after: int = 0, timeout: float = START_TIMEOUT) -> str:
        """Return the first frame any socket opened after the first ``after`` ones received."""
        deadline = time.monotonic() + timeout
        while True:
            for frames in self.sockets[after:]:
                if frames:
                    return frames[0]
            assert time.monotonic() < deadline, f"no frame on {self.page.url} in {timeout} s"
            self.page.wait_for_timeout(50)  # lets Playwright deliver its events; bounded above


def require_stack_services(layer_url: str) -> None:
    """Skip (or fail in CI) unless PostgreSQL, Redis and the channel layer's Redis answer."""
    import redis

    from tests.conftest import need
    from tests.pg_workers import require_postgres, require_redis

    require_postgres()
    require_redis()
    try:
        redis.Redis.from_url(layer_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        need(False, f"Redis for the channel layer at {layer_url} is not reachable: {exc}")


def wait_until_tasks_done(queue: str, process: WorkerProcess) -> None:
    """Wait until the db_worker ``process`` recorded the end of every task of ``queue``.

    An operation's row says it ended before the worker stores its task's result; a test
    database emptied in between makes django-tasks-db's worker exit (``NotUpdated``).
    """
    from django_tasks_db.models import DBTaskResult

    unfinished = DBTaskResult.objects.filter(queue_name=queue, finished_at__isnull=True)
    wait_for(
        lambda: not unfinished.exists(),
        START_TIMEOUT,
        f"the tasks of {queue} are done",
        watch=[process],
    )
