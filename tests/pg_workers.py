"""Worker processes for the PostgreSQL tests: service checks, start, watch, stop.

The tests that use these run in their own pytest invocation:

    pytest -m postgres --ds=tests.settings_pg
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

from django.conf import settings
from django.db import connection

from tests.conftest import need

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def require_postgres() -> None:
    """Skip (fail in CI) unless these tests run on PostgreSQL and it answers."""
    need(
        connection.vendor == "postgresql",
        "needs PostgreSQL: run these tests with pytest -m postgres --ds=tests.settings_pg",
    )
    import psycopg

    db = settings.DATABASES["default"]
    try:
        # The maintenance database, as Django uses to create the test database.
        psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", connect_timeout=3
        ).close()
    except psycopg.OperationalError as exc:
        need(False, f"PostgreSQL at {db['HOST']}:{db['PORT']} is not reachable: {exc}")


def require_redis() -> None:
    """Skip (fail in CI) unless the Celery broker, a Redis server, answers."""
    import redis

    url = settings.CELERY_BROKER_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        need(False, f"Redis at {url} is not reachable: {exc}")


def database_name() -> str:
    """Return the name of the test database (call once pytest-django has created it)."""
    return str(connection.settings_dict["NAME"])


def worker_env(db_name: str) -> dict[str, str]:
    """Return the environment for a worker process that uses the test database ``db_name``."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_pg",
        "LIVEOPS_TEST_PG_NAME": db_name,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
    }


def wait_for(
    check: Callable[[], T],
    timeout: float,
    what: str,
    *,
    watch: Sequence[WorkerProcess] = (),
) -> T:
    """Poll ``check`` until it returns a true value; fail after ``timeout`` seconds.

    Fail at once when a process in ``watch`` exits, with its output.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for process in watch:
            if process.returncode is not None:
                raise AssertionError(
                    f"{process.name} exited with {process.returncode} while waiting until "
                    f"{what}:\n{process.output()}"
                )
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {p.name} ---\n{p.output()}" for p in watch)
            raise AssertionError(f"Timed out after {timeout} s waiting until {what}.{logs}")
        time.sleep(0.05)


class WorkerProcess:
    """A subprocess whose output goes to a file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop())
            prefix=f"liveops-{name}-", suffix=".log", delete=False
        )
        self._popen = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def pid(self) -> int:
        """Return the process id."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Return the exit status, or None while the process runs."""
        return self._popen.poll()

    @property
    def stdin(self) -> IO[str]:
        """Return the process's standard input."""
        assert self._popen.stdin is not None
        return self._popen.stdin

    def send_line(self, line: str) -> None:
        """Write one line to the process's standard input."""
        self.stdin.write(line + "\n")
        self.stdin.flush()

    def output(self) -> str:
        """Return everything the process wrote so far (stdout and stderr)."""
        return Path(self._log.name).read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the output matches the regular expression ``pattern``."""
        return wait_for(
            lambda: re.search(pattern, self.output(), re.MULTILINE),
            timeout,
            f"{self.name} writes {pattern!r}",
            watch=[self],
        )

    def stop(self, timeout: float = 10) -> None:
        """Ask the process to stop (SIGTERM); kill it if it has not after ``timeout`` s."""
        if self._popen.stdin is not None:
            self._popen.stdin.close()
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(5)
        self._log.close()
        os.unlink(self._log.name)


def python(*args: str) -> list[str]:
    """Return the command line that runs this interpreter with ``args``."""
    return [sys.executable, *args]
