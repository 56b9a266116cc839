"""Process helpers shared by the benchmarks: start, watch and stop what a run starts.

Each benchmark starts servers (uvicorn, redis-server) and clients as child processes
in a temporary directory, logs each to ``NAME.log`` there, and must stop every one of
them however the run ends: ``Processes`` keeps that list. ``cpu_seconds`` reads what a
process (or one thread) has used from /proc, as the benchmarks report it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

from _net import answers, free_port

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """Return user + system CPU time of a process (or of one of its threads), from /proc.

    A process's figure covers all its threads. The kernel counts in ticks of
    ``1/CLK_TCK`` s (10 ms): only differences over a second or more mean much.
    """
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    # The command name (field 2) may hold spaces and parentheses: split after its ")".
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it).

    Thousands of sockets need more descriptors than the usual soft limit of 1024.
    Returns the limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stop(proc: subprocess.Popen[bytes], wait: float = 5.0) -> None:
    """Stop a process started in a session of its own: SIGTERM, then SIGKILL after ``wait`` s.

    The signals go to its process group, so that whatever it started goes too.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def stop_async(proc: asyncio.subprocess.Process, wait: float = 5.0) -> None:
    """Stop a process started with asyncio, as ``stop`` does, without blocking the loop."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), wait)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class Processes:
    """Every process a run starts, each logging to ``directory``; all stopped on exit.

    Each process runs in ``benchmarks/`` in a session of its own (``stop`` signals its
    whole group). ``start_timeout``: how long a server may take to listen;
    ``stop_wait``: how long one may take to exit after SIGTERM before SIGKILL.
    """

    def __init__(
        self, directory: Path, *, start_timeout: float = 30.0, stop_wait: float = 5.0
    ) -> None:
        self.directory = directory
        self.start_timeout = start_timeout
        self.stop_wait = stop_wait
        self.started: list[subprocess.Popen[bytes]] = []
        self.piped: list[asyncio.subprocess.Process] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``args``, its output (stdout and stderr) appended to ``NAME.log``."""
        log = (self.directory / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()  # the child holds its own copy
        self.started.append(proc)
        return proc

    async def start_piped(
        self, name: str, args: list[str], env: dict[str, str], *, track: bool = True
    ) -> asyncio.subprocess.Process:
        """Start a process whose stdin and stdout the caller talks through; stderr to the log.

        ``track=False``: the caller stops it (``stop_all_async`` does otherwise).
        """
        log = (self.directory / f"{name}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=HERE,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        if track:
            self.piped.append(proc)
        return proc

    def wait_for_port(self, proc: subprocess.Popen[bytes], name: str, port: int) -> None:
        """Wait until ``proc`` listens on ``port``; fail with its log if it exits or is late."""
        deadline = time.monotonic() + self.start_timeout
        while not answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not listen on {port}:\n{self.log(name)}")
            time.sleep(0.05)  # polling the port, under the deadline above

    def start_redis(self, name: str = "redis") -> tuple[subprocess.Popen[bytes], str]:
        """Start a private redis-server on a free loopback port; return it and its URL.

        Nothing persisted (no RDB, no AOF), its working directory the run's.
        """
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("redis-server is not installed: apt-get install redis-server")
        port = free_port()
        proc = self.start(
            name,
            [
                *(server, "--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            dict(os.environ),
        )
        self.wait_for_port(proc, name, port)
        return proc, f"redis://127.0.0.1:{port}/0"

    def log(self, name: str, *, whole: bool = False) -> str:
        """Return the end of a process's log (all of it with ``whole``)."""
        path = self.directory / f"{name}.log"
        if not path.exists():
            return "(no log)"
        text = path.read_text(errors="replace")
        return text if whole else text[-3000:]

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process started with ``start`` and forget it."""
        stop(proc, self.stop_wait)
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        """Stop every process started with ``start``, the last started first."""
        for proc in reversed(self.started):
            stop(proc, self.stop_wait)
        self.started.clear()

    async def stop_all_async(self) -> None:
        """Stop every process, those of ``start_piped`` (started last) first."""
        for piped in reversed(self.piped):
            await stop_async(piped, self.stop_wait)
        self.piped.clear()
        self.stop_all()
