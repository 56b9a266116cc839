"""The fan-out benchmark's light WebSocket client reads what the ``websockets`` library writes.

``benchmarks/_lightws.py`` parses server frames by hand; if it misread a length or a
fragment, the benchmark would count wrong frames and say nothing. These tests feed it
frames serialized by ``websockets`` (the same library uvicorn uses), in every split.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _lightws
import _stamp


def server_frames(frames: list[Frame], extensions: list[PerMessageDeflate] | None = None) -> bytes:
    return b"".join(f.serialize(mask=False, extensions=extensions) for f in frames)


def feed_in_chunks(data: bytes, sizes: list[int]) -> list[_lightws.Message]:
    parser = _lightws.FrameParser()
    out: list[_lightws.Message] = []
    pos = 0
    for size in sizes:
        out += parser.feed(data[pos : pos + size])
        pos += size
    out += parser.feed(data[pos:])
    return out


SMALL = b"x" * 125  # 7-bit length
MEDIUM = b"y" * 126  # 16-bit length, its smallest
LARGE = bytes(range(256)) * 300  # 64-bit length (76,800 bytes)


def test_lengths_and_control_frames_in_any_split() -> None:
    data = server_frames(
        [
            Frame(Opcode.TEXT, SMALL),
            Frame(Opcode.PING, b"hi"),
            Frame(Opcode.TEXT, MEDIUM),
            Frame(Opcode.BINARY, LARGE),
            Frame(Opcode.TEXT, b""),
            Frame(Opcode.CLOSE, b"\x03\xe8"),
        ]
    )
    expected = [
        (_lightws.TEXT, SMALL),
        (_lightws.PING, b"hi"),
        (_lightws.TEXT, MEDIUM),
        (_lightws.BINARY, LARGE),
        (_lightws.TEXT, b""),
        (_lightws.CLOSE, b"\x03\xe8"),
    ]
    rng = random.Random(7)
    splits = [[len(data)], [1] * 300, [2, 3, 9, 126, 131, 4]]
    splits += [[rng.randint(1, 5000) for _ in range(40)] for _ in range(20)]
    for sizes in splits:
        got = [(m.opcode, m.payload) for m in feed_in_chunks(data, sizes)]
        assert got == expected, sizes


def test_every_cut_through_a_header() -> None:
    data = server_frames([Frame(Opcode.TEXT, MEDIUM), Frame(Opcode.TEXT, b"z" * 70_000)])
    for cut in range(1, 16):
        got = feed_in_chunks(data, [cut, 128 - cut, 3])
        assert [len(m.payload) for m in got] == [126, 70_000], cut


def test_fragments_join_around_a_ping() -> None:
    data = server_frames(
        [
            Frame(Opcode.TEXT, b"one ", fin=False),
            Frame(Opcode.PING, b""),
            Frame(Opcode.CONT, b"two ", fin=False),
            Frame(Opcode.CONT, b"three"),
        ]
    )
    got = [(m.opcode, m.payload) for m in feed_in_chunks(data, [1] * len(data))]
    assert got == [(_lightws.PING, b""), (_lightws.TEXT, b"one two three")]


def test_a_masked_server_frame_is_refused() -> None:
    with pytest.raises(_lightws.ProtocolError):
        _lightws.FrameParser().feed(Frame(Opcode.TEXT, b"hi").serialize(mask=True))


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_permessage_deflate(no_context_takeover: bool) -> None:
    texts = [json.dumps({"liveop_html": f"<div>{i} " + "row " * 300 + "</div>"}) for i in range(5)]
    # The server's side of the extension: it compresses, the client inflates.
    server = PerMessageDeflate(False, no_context_takeover, 15, 15)
    data = server_frames([Frame(Opcode.TEXT, t.encode()) for t in texts], [server])
    assert len(data) < sum(map(len, texts)) / 4  # it did compress
    inflater = _lightws.Inflater(no_context_takeover)
    got = [inflater.inflate(m.payload).decode() for m in feed_in_chunks(data, [777] * 5)]
    assert got == texts


def test_client_frames_are_masked_and_read_back() -> None:
    data = _lightws.client_frame(_lightws.CLOSE, b"\x03\xe8")
    assert data[1] & 0x80
    reader = StreamReader()  # websockets' own parser reads it as a server would
    reader.feed_data(data)
    with pytest.raises(StopIteration) as stop:
        next(Frame.parse(reader.read_exact, mask=True))
    frame = stop.value.value
    assert (frame.opcode, frame.data) == (Opcode.CLOSE, b"\x03\xe8")


def test_percentile_is_within_one_percent() -> None:
    values = [0.5 + i * 0.37 for i in range(1000)]
    histogram: dict[int, int] = {}
    for ms in values:
        histogram[_lightws.bucket(ms)] = histogram.get(_lightws.bucket(ms), 0) + 1
    for q in (0.5, 0.99):
        exact = sorted(values)[int(q * len(values))]
        assert exact <= _lightws.percentile(histogram, q) <= exact * 1.0101


async def test_viewers_against_a_websockets_server() -> None:
    """Handshake, a stamp, a big frame, a ping and the terminal marker, end to end."""
    big = json.dumps({"liveop_html": "<p>" + "a" * 100_000 + _stamp.element(1, 0.0) + "</p>"})

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"liveop_html": "<p>snapshot</p>"}))
        await ws.send(json.dumps({"liveop_html": _stamp.element(0, time.monotonic())}))
        await ws.ping()
        await ws.send(big)
        await ws.send(
            json.dumps({"liveop_html": f"<p data-liveop-terminal>{_stamp.element(2, 0.0)}</p>"})
        )
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        tally = _lightws.Tally(b"data-liveop-terminal")
        viewers, errors = await _lightws.open_viewers(
            tally, port, "/", 3, wave=2, deflate=False, first_frame=True, within=5
        )
        tally.expect(viewers)
        await asyncio.wait_for(tally.all_terminal.wait(), 5)
        report = _lightws.report(viewers, tally, errors)
        for viewer in viewers:
            viewer.close()
    assert not errors
    assert report["distinct"] == [3, 3, 3]
    assert report["plain"] == 3
    assert report["terminal"] == 3
    assert report["frames"] == 9
