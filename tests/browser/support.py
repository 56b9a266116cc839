"""What the browser tests drive: the demo's servers and processes, and its live pages."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example"
HELPER = Path(__file__).with_name("demo_helper.py")
ARTIFACTS = ROOT / "test-artifacts" / "browser"

#: The users every test may log in as (password "pw"): two owners and one staff member.
USERS = ("alice", "bob", "stella:staff")
PASSWORD = "pw"

SERVER_START_TIMEOUT = 20.0
SERVER_STOP_TIMEOUT = 5.0
SUBPROCESS_TIMEOUT = 60.0
REDIS_URL = os.environ.get("LIVEOPS_TEST_REDIS", "redis://127.0.0.1:6379/13")

# Records, for every live container, what the page showed over time (not only at the
# end), so a test can tell "changed live" from "was right at load".
RECORDER = """
(() => {
  const seen = (window.__liveopsSeen = {});
  let finished = 0;
  const text = (el) => (el ? el.textContent.replace(/\\s+/g, " ").trim() : "");
  const push = (list, value) => {
    if (value && list[list.length - 1] !== value) list.push(value);
  };
  const record = () => {
    document.querySelectorAll("[data-liveop]").forEach((c) => {
      const s = (seen[c.id] ||= {
        status: [], percent: [], count: [], logLines: 0, finishedOrder: null,
      });
      const status = document.getElementById(c.id + "-status");
      const progress = document.getElementById(c.id + "-progress");
      const log = document.getElementById(c.id + "-log");
      push(s.status, text(status && status.querySelector(".liveops-status-text")));
      push(s.percent, text(progress && progress.querySelector(".liveops-percent")));
      push(s.count, text(progress && progress.querySelector(".liveops-count")));
      if (log) s.logLines = Math.max(s.logLines, log.querySelectorAll("li").length);
      if (s.finishedOrder === null && status && status.hasAttribute("data-liveop-terminal")) {
        s.finishedOrder = ++finished;
      }
    });
  };
  new MutationObserver(record).observe(document, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
})();
"""

#: Servers started and not stopped yet, whose logs a failed test prints.
RUNNING: list[Server] = []


def free_port() -> int:
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_answers(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Server:
    """One ASGI server process (uvicorn or daphne) serving the demo on a fixed port."""

    def __init__(self, kind: str, port: int, env: dict[str, str], log_path: Path) -> None:
        if kind not in {"uvicorn", "daphne"}:
            raise ValueError(f"kind must be 'uvicorn' or 'daphne', not {kind!r}")
        self.kind, self.port, self.env, self.log_path = kind, port, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        app, port = "demo_site.asgi:application", str(self.port)
        if self.kind == "daphne":
            return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", port, app]
        return [
            *(sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", port),
            *("--lifespan", "off", "--timeout-graceful-shutdown", "2"),
        ]

    def start(self) -> Server:
        """Start the process and return once the port answers (or fail with its log)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if port_answers(self.port):
            raise RuntimeError(f"port {self.port} is taken; cannot start {self.kind} on it")
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self._command(),
            cwd=EXAMPLE,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal goes to pytest only
        )
        RUNNING.append(self)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not port_answers(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not listen within {SERVER_START_TIMEOUT} s")
            time.sleep(0.05)  # polling the port, with the deadline above
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after a few seconds."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(SERVER_STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        with contextlib.suppress(ValueError):
            RUNNING.remove(self)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Operation:
    label: str
    pk: str
    url: str


class Demo:
    """The example project on a SQLite file of its own, driven through subprocesses."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        env = dict(os.environ)
        # pytest-django put tests.settings here; manage.py would only setdefault() it.
        env["DJANGO_SETTINGS_MODULE"] = "demo_site.settings"
        env["LIVEOPS_DEMO_DB"] = str(directory / "demo.sqlite3")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLE), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        for name in ("LIVEOPS_DEMO_REDIS", "LIVEOPS_DEMO_RUNNER", "LIVEOPS_DEMO_DEBUG"):
            env.pop(name, None)  # the defaults, unless a test asks otherwise
        self.env = env

    def environ(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, *args],
            cwd=EXAMPLE,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"{args} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def create(self, label: str, username: str, **fields: Any) -> Operation:
        """Create an operation that nothing runs yet (see ``worker``)."""
        out = self.run(str(HELPER), "create", label, username, json.dumps(fields))
        return Operation(**json.loads(out.strip().splitlines()[-1]))

    def worker(self, op: Operation, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Run ``op`` in a process of its own, as a Celery or task worker would."""
        log_path = self.directory / f"worker-{op.pk}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, str(HELPER), "run", op.label, op.pk],
                cwd=EXAMPLE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log_path = log_path  # type: ignore[attr-defined]
        return proc

    def server(self, kind: str, port: int | None = None, **env: str) -> Server:
        port = port or free_port()
        log_path = self.directory / f"{kind}-{port}.log"
        return Server(kind, port, self.environ(**env), log_path)


#: The regions the server renders (docs/protocol.md); "connection" belongs to the client.
SERVER_REGIONS = ("status", "progress", "stages", "log", "result")
LIVE_URL = re.compile(r"/operations/(?P<label>[a-z0-9_]+\.[a-z0-9_]+)/(?P<pk>[0-9a-f-]{36})/$")


class EndsHeld:
    """Hold back, on one page, the socket frames that carry an end, until ``release()``.

    A run sees a cancel at its next check, often milliseconds after "Cancelling…" is
    pushed, so a test could not look at that state before the end replaced it. Frames
    with ``data-liveop-terminal`` wait here in transit (as a slow network would keep
    them); every other frame goes through from the real server at once. Create it
    before the page opens its socket.
    """

    def __init__(self, page: Any) -> None:
        self.holding = True
        self.held: list[tuple[Any, str | bytes]] = []
        page.route_web_socket(re.compile(r"/ws/liveops/"), self._proxy)

    def _proxy(self, page_side: Any) -> None:
        server_side = page_side.connect_to_server()

        def from_server(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode()
            if self.holding and "data-liveop-terminal" in text:
                self.held.append((page_side, message))
            else:
                page_side.send(message)

        server_side.on_message(from_server)  # the page's own messages are forwarded as is

    def release(self) -> None:
        """Deliver what was held, in order, and hold nothing from now on."""
        self.holding = False
        for page_side, message in self.held:
            page_side.send(message)
        self.held.clear()


class LivePage:
    """One operation's live container in a page, found through the DOM contract."""

    def __init__(self, page: Any, pk: str) -> None:
        self.page = page
        self.pk = pk
        self.container_id = f"liveop-{pk}"
        self.container = page.locator(f"#{self.container_id}")

    @classmethod
    def of(cls, page: Any) -> LivePage:
        """Return the live container of the operation whose live page ``page`` shows."""
        match = LIVE_URL.search(page.url)
        assert match, f"{page.url} is not a live operation page"
        return cls(page, match["pk"])

    def region(self, name: str) -> Any:
        return self.page.locator(f"#{self.container_id}-{name}")

    def connection(self) -> str | None:
        return self.container.get_attribute("data-liveop-connection")

    def seen(self) -> dict[str, Any]:
        """Return what RECORDER saw this container show over time."""
        return self.page.evaluate("id => window.__liveopsSeen[id]", self.container_id)

    def regions_html(self) -> dict[str, str]:
        """Return the outer HTML of each server-rendered region."""
        return self.page.evaluate(
            """([id, names]) => Object.fromEntries(names.map(
                (n) => [n, document.getElementById(id + "-" + n).outerHTML]))""",
            [self.container_id, list(SERVER_REGIONS)],
        )

    def log_seqs(self) -> list[int]:
        return self.page.evaluate(
            """id => [...document.querySelectorAll("#" + id + "-log > li")]
                .map((li) => Number(li.dataset.liveopSeq))""",
            self.container_id,
        )

    def wait_for_log_seq_above(self, seq: int, timeout: float = 15_000) -> None:
        self.page.wait_for_function(
            """([id, seq]) => [...document.querySelectorAll("#" + id + "-log > li")]
                .some((li) => Number(li.dataset.liveopSeq) > seq)""",
            arg=[self.container_id, seq],
            timeout=timeout,
        )

    def wait_for_connection(self, predicate: str, timeout: float = 15_000) -> None:
        """Wait until ``predicate`` (JS, over ``state``) holds for data-liveop-connection."""
        self.page.wait_for_function(
            f"""id => {{
                const state = document.getElementById(id).getAttribute("data-liveop-connection");
                return {predicate};
            }}""",
            arg=self.container_id,
            timeout=timeout,
        )
