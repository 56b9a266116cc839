"""A light WebSocket viewer for ``_fanout.py``: thousands of sockets in one process.

    .venv/bin/python benchmarks/_lightws.py --port P --path /ws/liveops/?op=... --count N

The ``websockets`` client costs too much CPU per frame to be the measuring side of
3,000 sockets receiving 10 frames a second each on a 2-core machine. Each viewer here
is a bare ``asyncio.Protocol``: it sends the HTTP upgrade request by hand (offering
permessage-deflate only with ``--deflate``), checks ``Sec-WebSocket-Accept``, then
parses server frames minimally (unmasked, 7-bit/16-bit/64-bit lengths, text and
binary messages, fragments, ping answered with pong, close answered and ended). Each
message is searched for the benchmark stamp (``_stamp.read``) and for a terminal
marker; latencies go into a shared log-scale histogram (1 % buckets), so a report
stays small whatever the frame count.

As a script (run by ``_fanout.py``), it connects ``--count`` viewers in waves, prints
one JSON line (``{"ready": ..., "failed": ...}``), then obeys lines on stdin:
``count`` prints how many messages arrived so far; ``settle SECONDS`` waits up to
that long for every viewer to hold the terminal state, writes its report (JSON) to
``--report`` and prints ``{"settled": true}``; ``close`` (or end of input) closes
every socket and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import struct
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _stamp  # noqa: E402
from _procs import raise_fd_limit  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Latency histogram: bucket k holds latencies in [FLOOR_MS * 1.01**k, FLOOR_MS * 1.01**(k+1)).
FLOOR_MS = 0.01
_LOG_STEP = math.log(1.01)


class ProtocolError(Exception):
    """The server sent something a WebSocket server may not send."""


# --- handshake ---------------------------------------------------------------------------


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_value(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` a server must answer to ``key`` (RFC 6455)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake_request(host: str, path: str, key: str, *, deflate: bool) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class Accepted:
    """What the server's 101 response agreed to."""

    deflate: bool = False
    server_no_context_takeover: bool = False


def parse_response(head: bytes, key: str) -> Accepted:
    """Check the server's response head (without the blank line); raise on refusal."""
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 101"):
        raise ProtocolError(f"no upgrade: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept_value(key):
        raise ProtocolError("wrong Sec-WebSocket-Accept")
    extensions = headers.get("sec-websocket-extensions", "")
    if "permessage-deflate" not in extensions:
        return Accepted()
    params = {p.strip().split("=")[0] for p in extensions.split(";")}
    return Accepted(deflate=True, server_no_context_takeover="server_no_context_takeover" in params)


# --- frames ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A whole message (fragments joined) or a control frame."""

    opcode: int
    payload: bytes
    compressed: bool = False  # RSV1 on its first frame: permessage-deflate


class FrameParser:
    """Turn a server's byte stream into messages; partial frames wait for more bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._opcode = 0
        self._compressed = False

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80:
                raise ProtocolError("a server frame is masked")
            length, head = b1 & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buf, pos + 2)
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            stop = pos + head + length
            if stop > end:
                break
            payload = bytes(buf[pos + head : stop])
            pos = stop
            fin, opcode = b0 & 0x80, b0 & 0x0F
            if opcode >= CLOSE:  # control frames are never fragmented, may come between
                out.append(Message(opcode, payload))
                continue
            if opcode != CONTINUATION:
                self._opcode, self._compressed, self._parts = opcode, bool(b0 & 0x40), []
            elif not self._opcode:
                raise ProtocolError("a continuation frame without a message")
            if fin and not self._parts:
                out.append(Message(self._opcode, payload, self._compressed))
                self._opcode = 0
            else:
                self._parts.append(payload)
                if fin:
                    out.append(Message(self._opcode, b"".join(self._parts), self._compressed))
                    self._opcode, self._parts = 0, []
        del buf[:pos]
        return out


class Inflater:
    """Undo permessage-deflate (RFC 7692) on the messages one server sends."""

    def __init__(self, no_context_takeover: bool) -> None:
        self._reset = no_context_takeover
        self._zlib = zlib.decompressobj(-15)  # 15 bits decodes any smaller window too

    def inflate(self, payload: bytes) -> bytes:
        if self._reset:
            self._zlib = zlib.decompressobj(-15)
        return self._zlib.decompress(payload + b"\x00\x00\xff\xff")


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """Return one masked client frame (control frames only: at most 125 bytes)."""
    assert len(payload) <= 125
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


# --- latencies ---------------------------------------------------------------------------


def bucket(ms: float) -> int:
    return int(math.log(max(ms, FLOOR_MS) / FLOOR_MS) / _LOG_STEP)


def percentile(histogram: dict[int, int], q: float) -> float:
    """Return the ``q`` quantile (ms, upper edge of its 1 % bucket) of a histogram."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank, seen = q * total, 0
    for key in sorted(histogram):
        seen += histogram[key]
        if seen > rank or seen == total:
            return FLOOR_MS * math.exp((key + 1) * _LOG_STEP)
    raise AssertionError("unreachable")


# --- the viewer --------------------------------------------------------------------------


@dataclass
class Tally:
    """What every viewer of one process received, shared (one event loop, no locks)."""

    terminal_marker: bytes
    histogram: Counter[int] = field(default_factory=Counter)
    max_ms: float = 0.0
    frames: int = 0
    terminal: int = 0
    gone: int = 0  # counted viewers that closed without the terminal state
    expected: int | None = None  # viewers that connected; set once all are
    all_terminal: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, viewers: list[Viewer]) -> None:
        """Count these viewers in: ``all_terminal`` waits for them."""
        for viewer in viewers:
            viewer.counted = True
        self.expected = len(viewers)
        self.gone = sum(not v.terminal and v.closed is not None for v in viewers)
        self.check()

    def check(self) -> None:
        """Set ``all_terminal`` once every counted viewer holds the terminal state or is gone."""
        if self.expected is not None and self.terminal + self.gone >= self.expected:
            self.all_terminal.set()


class Viewer(asyncio.Protocol):
    """One WebSocket viewer on a raw transport."""

    def __init__(
        self, tally: Tally, host: str, path: str, *, deflate: bool, first_frame: bool
    ) -> None:
        self.tally = tally
        self._request_line = (host, path, deflate)
        self._key = new_key()
        self._head = b""
        self._parser: FrameParser | None = None
        self._inflater: Inflater | None = None
        self._first_frame = first_frame  # ready on the first message, not on the 101
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.distinct = 0  # stamped messages with a newer seq than the last
        self.reordered = 0  # stamped messages with a seq not newer than the last
        self.plain = 0  # messages without a stamp (snapshots)
        self.last_seq = -1
        self.terminal = False
        self.counted = False  # one of the viewers the tally expects
        self.closed: str | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        host, path, deflate = self._request_line
        self.transport.write(handshake_request(host, path, self._key, deflate=deflate))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self._parser is None:
            self._head += data
            head, found, rest = self._head.partition(b"\r\n\r\n")
            if not found:
                return
            try:
                accepted = parse_response(head, self._key)
            except ProtocolError as exc:
                self._fail(str(exc))
                return
            self._parser = FrameParser()
            if accepted.deflate:
                self._inflater = Inflater(accepted.server_no_context_takeover)
            if not self._first_frame:
                self._set_ready()
            data = rest
        try:
            messages = self._parser.feed(data)
        except ProtocolError as exc:
            self._fail(str(exc))
            return
        for message in messages:
            if message.opcode in (TEXT, BINARY):
                payload = message.payload
                if message.compressed and self._inflater is not None:
                    payload = self._inflater.inflate(payload)
                self._on_message(payload, now)
            elif message.opcode == PING:
                self._write(client_frame(PONG, message.payload))
            elif message.opcode == CLOSE:
                self._write(client_frame(CLOSE, message.payload[:2]))
                self._fail(f"closed by the server {message.payload[:2].hex()}")
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed is None:
            self.closed = repr(exc) if exc else "connection lost"
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(self.closed))
        if self.counted and not self.terminal:
            self.tally.gone += 1
            self.tally.check()

    # the rest

    @property
    def deflated(self) -> bool:
        """Return whether the server accepted permessage-deflate."""
        return self._inflater is not None

    def _on_message(self, payload: bytes, now: float) -> None:
        tally = self.tally
        stamp = _stamp.read(payload)
        if stamp is None:
            self.plain += 1
        else:
            seq, sent_at = stamp
            if seq > self.last_seq:
                self.distinct += 1
                self.last_seq = seq
            else:
                self.reordered += 1
            ms = (now - sent_at) * 1000
            tally.frames += 1
            tally.histogram[bucket(ms)] += 1
            if ms > tally.max_ms:
                tally.max_ms = ms
        if not self.terminal and tally.terminal_marker in payload:
            self.terminal = True
            tally.terminal += 1
            tally.check()
        self._set_ready()

    def _set_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, why: str) -> None:
        self.closed = why
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        """Say goodbye (close code 1000) and drop the connection."""
        if self.closed is None:
            self.closed = "closed by the client"
        self._write(client_frame(CLOSE, struct.pack("!H", 1000)))
        if self.transport is not None:
            self.transport.close()


async def open_viewers(
    tally: Tally,
    port: int,
    path: str,
    count: int,
    *,
    wave: int,
    deflate: bool,
    first_frame: bool,
    within: float,
) -> tuple[list[Viewer], Counter[str]]:
    """Connect ``count`` viewers, ``wave`` at a time; return the ready ones and the errors."""
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{port}"
    viewers: list[Viewer] = []
    errors: Counter[str] = Counter()
    deadline = loop.time() + within

    async def one() -> None:
        _, viewer = await loop.create_connection(
            lambda: Viewer(tally, host, path, deflate=deflate, first_frame=first_frame),
            "127.0.0.1",
            port,
        )
        try:
            await viewer.ready
        except BaseException:
            viewer.close()
            raise
        viewers.append(viewer)

    for start in range(0, count, wave):
        remaining = deadline - loop.time()
        if remaining <= 0:
            errors["connect deadline passed"] += count - start
            break
        size = min(wave, count - start)
        tasks = [asyncio.ensure_future(one()) for _ in range(size)]
        done, pending = await asyncio.wait(tasks, timeout=remaining)
        for task in pending:
            task.cancel()
            errors["timed out"] += 1
        for task in done:
            exc = task.exception()
            if exc is not None:
                errors[repr(exc)[:120]] += 1
    return viewers, errors


def report(viewers: list[Viewer], tally: Tally, errors: Counter[str]) -> dict[str, Any]:
    """Return what this process's viewers received, as JSON-ready data."""
    return {
        "distinct": [v.distinct for v in viewers],
        "reordered": sum(v.reordered for v in viewers),
        "plain": sum(v.plain for v in viewers),
        "terminal": sum(v.terminal for v in viewers),
        "broken": Counter(v.closed for v in viewers if v.closed is not None),
        "connect_errors": errors,
        "frames": tally.frames,
        "histogram": dict(tally.histogram),
        "max_ms": tally.max_ms,
    }


# --- the script --------------------------------------------------------------------------


async def _main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally(args.terminal.encode())
    viewers, errors = await open_viewers(
        tally,
        args.port,
        args.path,
        args.count,
        wave=args.wave,
        deflate=args.deflate,
        first_frame=args.first_frame,
        within=args.connect_timeout,
    )
    tally.expect(viewers)
    first_error = errors.most_common(1)[0][0] if errors else None
    deflated = sum(v.deflated for v in viewers)
    ready = {"ready": len(viewers), "deflated": deflated, "failed": sum(errors.values())}
    print(json.dumps({**ready, "error": first_error}))
    sys.stdout.flush()
    # stdin is a pipe from fanout.py: read it off the loop, which keeps receiving meanwhile.
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command, _, value = line.strip().partition(" ")
        if command == "count":  # what arrived so far
            print(json.dumps({"plain": sum(v.plain for v in viewers), "frames": tally.frames}))
            sys.stdout.flush()
            continue
        if command == "settle":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.all_terminal.wait(), float(value))
            data = json.dumps(report(viewers, tally, errors))
            await asyncio.to_thread(Path(args.report).write_text, data)
            print(json.dumps({"settled": True}))
            sys.stdout.flush()
            continue
        break  # "close", or fanout.py went away: closing is not part of the measurement
    for viewer in viewers:
        viewer.close()
    await asyncio.sleep(0.2)  # let the close frames go out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--wave", type=int, default=100)
    parser.add_argument("--connect-timeout", type=float, default=90.0)
    parser.add_argument("--first-frame", action="store_true", help="ready on the first message")
    parser.add_argument("--terminal", default="data-liveop-terminal")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--report", required=True)
    parser.add_argument("--cpus", default="", help="pin this process to these CPUs (1,2)")
    args = parser.parse_args()
    raise_fd_limit()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(args))
    else:
        uvloop.run(_main(args))


if __name__ == "__main__":
    main()
