"""A soak (issue 12): thousands of short operations leave their processes as they found them.

Each runner takes ``OPERATIONS`` operations: ``thread`` runs them in the uvicorn server
that serves their sockets, ``celery`` in a Celery worker beside it. Every operation is
watched by one WebSocket that connects, sees its end and leaves, ``CONCURRENCY`` at a
time. After a warm-up (which grows every pool and cache), halfway, and after the soak,
the test reads the server's and the worker's memory, threads, open files, database and
layer connections and live objects (tests/soak_probe.py), and the channel layer's
groups: each must come back to its starting level, within the margins below, once the
processes have settled.

    pytest -m postgres --ds=tests.settings_pg -p no:cacheprovider tests/test_soak.py -s

``-s`` shows the figures. The operations are created here (one INSERT per round) and
enqueued by a request to the server, as a site's create view does: the same path for
both runners, so the server's side of Celery (its broker connections) soaks too.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from liveops import _grants as grants
from liveops._protocol import WEBSOCKET_PATH
from tests.e2e_support import PrivateRedis, Server, celery_worker, logs, stack_env, wait_for_celery
from tests.pg_workers import (
    WorkerProcess,
    database_name,
    require_postgres,
    require_redis,
    wait_for,
)
from tests.testapp.models import Scripted

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

RUNNERS = ["thread", "celery"]
#: Operations per runner, and how many sockets watch at once.
OPERATIONS = 2000
CONCURRENCY = 50
#: Operations before the first measure: rounds at full concurrency, so the thread pools,
#: the database and Redis connection pools and the caches have grown first.
WARM_UP = 2 * CONCURRENCY
#: How long one operation may take from its socket's connect to its end on that socket.
OPERATION_TIMEOUT = 30.0
#: How long the processes may take to let go of what the last operations held.
SETTLE_TIMEOUT = 20.0

# Margins over the starting level, each far below one per operation (2,000).
#: Memory. A process that keeps nothing still grows: each socket's permessage-deflate
#: state (some 300 kB of zlib buffers, outside Python's heap) is allocated and freed
#: CONCURRENCY at a time, and the allocator keeps what it grew; measured here, this
#: levels off after about 1,500 operations, some 30 MB up (without deflate, 18 MB lower). So
#: the whole soak may add RSS_MARGIN_KB, its second half only RSS_HALF_MARGIN_KB: the
#: allocator's drift there has reached 2 MB, and a leak of 6 kB a socket (a frame and
#: the objects that hold it) adds 6 MB. The census below sees much smaller leaks.
RSS_MARGIN_KB = 48 * 1024
RSS_HALF_MARGIN_KB = 6 * 1024
#: Threads: a pool (asgiref's, Celery's) may start one more on a late burst.
THREADS_MARGIN = 2
#: Open files other than the layer's connections: a socket still closing, a log rotated.
FDS_MARGIN = 4
#: The layer's connections: channels_redis keeps every connection its pools opened, so a
#: burst opens more, up to the commands in flight at once (joins and leaves are capped at
#: 32 per process, sends follow the running operations): bounded by the concurrency.
LAYER_MARGIN = 2 * CONCURRENCY
#: Live objects the collector tracks: caches fill up (psycopg's parsed queries, Django's
#: templates); a leak of one object per operation would be 2,000 of them.
OBJECTS_MARGIN = 1000

#: The attribute every region of a terminal state carries (liveops._protocol).
TERMINAL = "data-liveop-terminal"


@pytest.fixture(scope="session")
def services() -> None:
    require_postgres()
    require_redis()  # the Celery broker


# --- what the processes hold ---------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """What one process holds (memory in kB); ``liveops`` counts objects of liveops' types."""

    rss_kb: int
    threads: int
    fds: int
    layer_connections: int
    db_connections: int
    objects: int
    tasks: int
    liveops: int


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _tcp_peers(pid: int) -> dict[str, int]:
    """Map each TCP socket inode of the process's network namespace to its remote port."""
    peers = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            columns = line.split()
            peers[columns[9]] = int(columns[2].rsplit(":", 1)[1], 16)
    return peers


def _open_files(pid: int) -> list[str]:
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except FileNotFoundError:  # closed meanwhile
            continue
    return targets


def connections_to(pid: int, port: int) -> int:
    """Count the process's TCP connections to ``port`` on the far side."""
    peers = _tcp_peers(pid)
    return sum(
        1
        for target in _open_files(pid)
        if target.startswith("socket:[") and peers.get(target[8:-1]) == port
    )


def db_connections_by_application(names: list[str]) -> dict[str, int]:
    """Count the test database's backends of each ``application_name`` (tests.settings_stack)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = ANY(%s) GROUP BY application_name",
            [database_name(), names],
        )
        counts = dict(cursor.fetchall())
    return {name: counts.get(name, 0) for name in names}


class Probe:
    """Ask a process for a census of its live objects (tests/soak_probe.py) and read it."""

    def __init__(self, directory: Path, process: WorkerProcess) -> None:
        self.path = directory / f"{process.pid}.json"
        self.process = process
        self.asked = 0

    def census(self) -> dict[str, Any]:
        self.asked += 1
        os.kill(self.process.pid, signal.SIGUSR2)
        return wait_for(
            self._answer,
            30,
            f"{self.process.name} answers census {self.asked}",
            watch=[self.process],
        )

    def _answer(self) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return answer if answer["answer"] == self.asked else None


@dataclass(frozen=True)
class Snapshot:
    """Everything measured at one moment: per process, and on the channel layer."""

    processes: dict[str, Held]  # by role: "server", "worker"
    groups: int  # the layer's groups (a group's key exists while it has a member)
    censuses: dict[str, dict[str, int]]  # by role: live objects by type


@dataclass
class Soak:
    """The processes of one runner's soak, and how to measure them."""

    runner: str
    server: Server
    watched: dict[str, WorkerProcess]  # by role; connections named f"{prefix}-{role}"
    probes: dict[str, Probe]
    prefix: str
    layer: Any  # a client of the layer's Redis
    layer_port: int
    user: Any
    cookie: str
    session_key: str

    def measure(self, census: bool = True) -> Snapshot:
        names = [f"{self.prefix}-{role}" for role in self.watched]
        databases = db_connections_by_application(names)
        processes, censuses = {}, {}
        for role, process in self.watched.items():
            answer = self.probes[role].census() if census else {"objects": 0, "types": {}}
            types = answer["types"]
            status = _status(process.pid)
            files = _open_files(process.pid)
            processes[role] = Held(
                rss_kb=int(status["VmRSS"].split()[0]),
                threads=int(status["Threads"]),
                fds=len(files),
                layer_connections=connections_to(process.pid, self.layer_port),
                db_connections=databases[f"{self.prefix}-{role}"],
                objects=answer["objects"],
                tasks=types.get("_asyncio.Task", 0),
                liveops=sum(n for name, n in types.items() if name.startswith("liveops.")),
            )
            censuses[role] = types
        groups = sum(1 for _ in self.layer.scan_iter(f"{self.prefix}:group:*", count=1000))
        return Snapshot(processes, groups, censuses)

    def settle(self, start: Snapshot) -> Snapshot:
        """Measure until what lets go by itself is back within its margin, or SETTLE_TIMEOUT."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            now = self.measure(census=False)
            if settled(start, now) or time.monotonic() > deadline:
                return self.measure()
            for process in self.processes():
                assert process.returncode is None, f"{process.name} exited{logs([process])}"
            time.sleep(0.2)  # polling the processes, under the deadline above

    def processes(self) -> list[WorkerProcess]:
        return list(self.watched.values())

    def run(self, count: int) -> None:
        """Create ``count`` operations and watch each to its end through a socket of its own."""
        ops = Scripted.objects.bulk_create(Scripted(owner=self.user) for _ in range(count))
        pks = [op.pk for op in ops]
        begun = time.monotonic()
        try:
            asyncio.run(watch_all(self.server.url, pks, self.cookie, self.grant))
        except BaseException as exc:
            raise AssertionError(f"{self.runner}: {exc!r}{logs(self.processes())}") from exc
        took = time.monotonic() - begun
        finished = Scripted.objects.filter(pk__in=pks, finished_successfully=True).count()
        assert finished == count, f"{finished} of {count} operations finished in {took:.1f} s"
        print(f"{self.runner}: {count} operations in {took:.1f} s")

    def grant(self, token: str) -> str:
        return grants.issue(token, self.user, self.session_key)


def settled(start: Snapshot, now: Snapshot) -> bool:
    """Whether the groups, connections, threads and files are back within their margins."""
    return now.groups <= start.groups and all(
        held.db_connections <= start.processes[role].db_connections
        and held.threads <= start.processes[role].threads + THREADS_MARGIN
        and held.fds - held.layer_connections
        <= start.processes[role].fds - start.processes[role].layer_connections + FDS_MARGIN
        for role, held in now.processes.items()
    )


# --- the sockets -----------------------------------------------------------------------------


async def watch_all(
    base_url: str, pks: list[Any], cookie: str, grant: Callable[[str], str]
) -> None:
    """Watch every operation to its end, ``CONCURRENCY`` sockets at once."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(pk: Any) -> None:
        async with limit:
            await watch_one(base_url, pk, cookie, grant)

    async with asyncio.TaskGroup() as group:  # the first failure cancels the rest
        for pk in pks:
            group.create_task(one(pk))


async def watch_one(base_url: str, pk: Any, cookie: str, grant: Callable[[str], str]) -> None:
    """Connect as the operation's page does, enqueue it, read until its end, and leave."""
    from websockets.asyncio.client import connect

    netloc = urlsplit(base_url).netloc
    token = f"{Scripted.live_label()}:{pk}"
    url = f"ws://{netloc}/{WEBSOCKET_PATH}?op={quote(f'{token}~{grant(token)}', safe='')}"
    frames: list[str] = []
    try:
        async with asyncio.timeout(OPERATION_TIMEOUT):
            # permessage-deflate on, as in browsers: its buffers are part of a socket's cost.
            async with connect(
                url, origin=base_url, additional_headers={"Cookie": cookie}, close_timeout=5
            ) as socket:  # type: ignore[arg-type]
                frames.append(str(await socket.recv()))  # the snapshot: it is subscribed
                assert '"liveop_html"' in frames[0], f"not a snapshot: {frames[0][:300]}"
                await enqueue(netloc, token)
                while TERMINAL not in frames[-1]:
                    frames.append(str(await socket.recv()))
    except BaseException as exc:
        last = frames[-1][:300] if frames else "none"
        raise AssertionError(
            f"{token}: {exc!r} after {len(frames)} frame(s), the last: {last}"
        ) from exc


async def enqueue(netloc: str, token: str) -> None:
    """POST to the test server's enqueue view (tests/urls.py), as a create view would."""
    host, port = netloc.rsplit(":", 1)
    label, pk = token.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /test/enqueue/{label}/{pk}/ HTTP/1.1\r\nHost: {netloc}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


# --- the processes ---------------------------------------------------------------------------


@pytest.fixture(params=RUNNERS)
def soak(
    request: pytest.FixtureRequest, private_redis: PrivateRedis, user: Any, tmp_path: Path
) -> Iterator[Soak]:
    """Start the runner's processes on a layer of this test's own; stop them afterwards."""
    import redis

    runner = request.param
    prefix = f"lo-soak-{uuid.uuid4().hex[:8]}"
    env = stack_env(
        private_redis.url,
        prefix,
        LIVEOPS_TEST_RUNNER=runner,
        LIVEOPS_TEST_CELERY_QUEUE=prefix,
        LIVEOPS_TEST_PROBE=str(tmp_path),
    )
    client = Client()
    client.force_login(user)
    cookie_name = django_settings.SESSION_COOKIE_NAME
    session_key = client.cookies[cookie_name].value
    layer = redis.Redis.from_url(private_redis.url, socket_timeout=5)
    started: list[WorkerProcess] = []
    try:
        server = Server("uvicorn", {**env, "LIVEOPS_TEST_PG_APPLICATION": f"{prefix}-server"})
        started.append(server.process)
        watched = {"server": server.process}
        if runner == "celery":
            from tests.celery_app import app

            worker, node = celery_worker(
                prefix, {**env, "LIVEOPS_TEST_PG_APPLICATION": f"{prefix}-worker"}
            )
            started.append(worker)
            watched["worker"] = worker
            wait_for_celery(app, node, worker)
        server.wait_until_ready()
        probes = {role: Probe(tmp_path, process) for role, process in watched.items()}
        cookie = f"{cookie_name}={session_key}"
        yield Soak(
            runner,
            server,
            watched,
            probes,
            prefix,
            layer,
            private_redis.port,
            user,
            cookie,
            session_key,
        )
    finally:
        for process in started:
            process.stop()
        layer.close()
        if runner == "celery":
            _forget_queue(prefix)


def _forget_queue(queue: str) -> None:
    """Delete the Celery broker's keys of this test's queue (on the shared Redis)."""
    import redis

    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL, socket_timeout=5)
    try:
        keys = list(client.scan_iter(f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# --- the soak --------------------------------------------------------------------------------


def table(runner: str, snapshots: dict[str, Snapshot]) -> str:
    """The figures at each measure, and the change from the first to the last."""
    names = list(snapshots)
    first, last = snapshots[names[0]], snapshots[names[-1]]
    header = f"  {'runner':6} {'where':6} {'resource':17}" + "".join(f"{n:>9}" for n in names)
    rows = [header + f"{'change':>9}"]
    for role in first.processes:
        for field in fields(Held):
            values = [getattr(s.processes[role], field.name) for s in snapshots.values()]
            rows.append(
                f"  {runner:6} {role:6} {field.name:17}"
                + "".join(f"{v:>9}" for v in values)
                + f"{values[-1] - values[0]:>+9}"
            )
    values = [s.groups for s in snapshots.values()]
    rows.append(
        f"  {runner:6} {'layer':6} {'groups':17}"
        + "".join(f"{v:>9}" for v in values)
        + f"{last.groups - first.groups:>+9}"
    )
    return "\n".join(rows)


def grown_types(start: dict[str, int], end: dict[str, int], top: int = 12) -> str:
    """The types whose live objects grew most, for a failure message."""
    growth = sorted(((end.get(n, 0) - start.get(n, 0), n) for n in end), reverse=True)
    return ", ".join(f"{name} +{count}" for count, name in growth[:top] if count > 0)


@pytest.mark.timeout(600)
def test_a_soak_leaves_the_server_and_the_worker_as_they_were(soak: Soak) -> None:
    begun = time.monotonic()
    soak.run(WARM_UP)
    wait_for(
        lambda: soak.measure(census=False).groups == 0,
        SETTLE_TIMEOUT,
        "the warm-up's sockets have left their groups",
        watch=soak.processes(),
    )
    start = soak.measure()
    soak.run(OPERATIONS // 2)
    half = soak.settle(start)
    soak.run(OPERATIONS - OPERATIONS // 2)
    end = soak.settle(start)
    figures = table(soak.runner, {"start": start, "half": half, "end": end})
    print(f"\n{figures}\n  {soak.runner}: {time.monotonic() - begun:.0f} s in all")

    assert end.groups == start.groups, figures
    for role, before in start.processes.items():
        after, halfway = end.processes[role], half.processes[role]
        grown = grown_types(start.censuses[role], end.censuses[role])
        where = f"{soak.runner} {role}:\n{figures}\ngrown: {grown}"
        assert after.db_connections <= before.db_connections, where
        assert after.threads <= before.threads + THREADS_MARGIN, where
        assert after.fds - after.layer_connections <= (
            before.fds - before.layer_connections + FDS_MARGIN
        ), where
        assert after.layer_connections <= before.layer_connections + LAYER_MARGIN, where
        assert after.liveops <= before.liveops, where
        assert after.tasks <= before.tasks, where
        assert after.objects <= before.objects + OBJECTS_MARGIN, where
        assert after.rss_kb <= before.rss_kb + RSS_MARGIN_KB, where
        assert after.rss_kb <= halfway.rss_kb + RSS_HALF_MARGIN_KB, where
