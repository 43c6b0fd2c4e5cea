"""Market data benchmark on the recorded BTC USD-M stream, everything side by side in one run.

1. Local book: level updates per second of `mm_daemon.core.book.Book` against ccxt.pro's own
   OrderBook applying the same deltas (pre-parsed: ticks/lots for ours, floats for ccxt's).
2. Messages per second through the whole adapter (`CcxtMarketData`: native Binance reader, sync,
   book, events, a `MarketState` computing fair value) against a bare ccxt.pro
   `watch_order_book` loop. Both read the same frames from a minimal Binance USD-M server in
   another process that replays the recorded stream at full speed (the recorded diffs split
   into diffs of at most 20 levels, update ids chained so the book is unchanged).
3. Frame receipt -> fair value updated, p50/p99, with the server pacing frames at 2,500/s
   (receipt = when the reader got the TCP chunk holding the frame, so frames queued behind
   others in one chunk count their wait); and the same path in process, frame by frame, with
   no socket (processing time alone).
4. RSS of a process running two venues' adapters (spot + USD-M) against the simulator.
5. The adapter path without a socket: the wire bytes of the stream cut into 64 KiB chunks and
   handed to the websocket client's protocol as the loop hands it what it reads (frame cutting,
   orjson, levels, book, events, fair value).

`--baseline python` also runs 2 and 5 with the compiled readers off (the pure-Python fallback
of a build without a C compiler), interleaved with the compiled runs. Another commit is
compared with `bench/compare.py`, which runs this script in both checkouts in turn.

Run: `.venv/bin/python bench/bench_market_data.py [--repeats N] [--baseline python]`; prints a
table and writes bench/results/market_data.json. Needs the recorded captures
($MMD_DATA_DIR or ../shared/data/binance); exits with a note when they are absent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import logging
import multiprocessing as mp
import os
import socket
import statistics
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mm_daemon.binance.capture import default_data_dir, read_capture  # noqa: E402
from mm_daemon.config import MarketDataConfig, SimConfig, VenueConfig  # noqa: E402
from mm_daemon.core.book import Book, SequenceRule  # noqa: E402
from mm_daemon.core.market_state import MarketState  # noqa: E402
from mm_daemon.core.types import BookDelta, BookSnapshot, MarketEvent  # noqa: E402

RESULTS = REPO / "bench" / "results" / "market_data.json"
TICK, LOT = 0.1, 0.001
MAX_LEVELS = 20
PACED_RATE = 2500.0
PACED_SECONDS = 4.0
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the stream ------------------------------------------------------------------------------


def load_stream(data_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(REST snapshot, depth payloads after it as 20-level diffs with chained ids)."""
    snapshot: dict[str, Any] | None = None
    diffs: list[dict[str, Any]] = []
    for _, raw in read_capture(data_dir / "usdm" / "btcusdt_20240808.gz"):
        msg = orjson.loads(raw)
        if "lastUpdateId" in msg:
            snapshot = msg
        elif msg["stream"].endswith("@depth@0ms"):
            diffs.append(msg["data"])  # diffs received before the snapshot may straddle it
    if snapshot is None:
        raise SystemExit("no depth snapshot in the capture")
    payloads: list[dict[str, Any]] = []
    for data in diffs:
        if data["u"] < snapshot["lastUpdateId"]:
            continue
        # The first diff straddles the snapshot id: keep it whole so the sync rule holds.
        payloads.extend(split_diff(data) if payloads else [data])
    return snapshot, payloads


def split_diff(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One recorded diff as diffs of at most MAX_LEVELS levels applying the same changes."""
    levels = [("b", lv) for lv in data["b"]] + [("a", lv) for lv in data["a"]]
    # Deletions first: no intermediate book can cross (whatever a new level would cross is
    # deleted by the same diff, since the recorded book after it is not crossed).
    levels.sort(key=lambda side_level: float(side_level[1][1]) != 0.0)
    chunks = [levels[i : i + MAX_LEVELS] for i in range(0, len(levels), MAX_LEVELS)] or [[]]
    n = len(chunks)
    if n == 1 or data["u"] - data["pu"] < n:
        return [data]
    out = []
    prev = data["pu"]
    for k, chunk in enumerate(chunks, start=1):
        u = data["u"] if k == n else data["pu"] + k
        out.append(
            {
                "e": "depthUpdate",
                "E": data["E"],
                "T": data["T"],
                "s": data["s"],
                "U": prev + 1 if k > 1 else data["U"],
                "u": u,
                "pu": prev,
                "b": [lv for side, lv in chunk if side == "b"],
                "a": [lv for side, lv in chunk if side == "a"],
            }
        )
        prev = u
    return out


# -- 1. book apply ---------------------------------------------------------------------------


def bench_books(snapshot: dict[str, Any], payloads: list[dict[str, Any]], repeats: int) -> dict:
    import ccxt.pro as ccxtpro  # noqa: PLC0415  heavy import

    ours = [
        (
            d["U"],
            d["u"],
            d["pu"],
            tuple((round(float(p) / TICK), round(float(q) / LOT)) for p, q in d["b"]),
            tuple((round(float(p) / TICK), round(float(q) / LOT)) for p, q in d["a"]),
        )
        for d in payloads
    ]
    theirs = [
        ([(float(p), float(q)) for p, q in d["b"]], [(float(p), float(q)) for p, q in d["a"]])
        for d in payloads
    ]
    levels = sum(len(b) + len(a) for _, _, _, b, a in ours)
    snap_b = tuple((round(float(p) / TICK), round(float(q) / LOT)) for p, q in snapshot["bids"])
    snap_a = tuple((round(float(p) / TICK), round(float(q) / LOT)) for p, q in snapshot["asks"])
    exchange = ccxtpro.binanceusdm()
    our_rates, their_rates = [], []
    for _ in range(repeats):
        book = Book(SequenceRule.BINANCE_USDM)
        book.load(snapshot["lastUpdateId"], snap_b, snap_a)
        update = book.update
        t0 = time.perf_counter()
        for first, last, prev, bids, asks in ours:
            update(first, last, prev, bids, asks)
        our_rates.append(levels / (time.perf_counter() - t0))
        if not book.synced:
            raise RuntimeError("the recorded stream must apply without a gap")

        ob = exchange.order_book(
            {
                "bids": [[float(p), float(q)] for p, q in snapshot["bids"]],
                "asks": [[float(p), float(q)] for p, q in snapshot["asks"]],
            },
            1000,
        )
        ccxt_bids, ccxt_asks = ob["bids"], ob["asks"]
        t0 = time.perf_counter()
        for bids_f, asks_f in theirs:
            for p, q in bids_f:
                ccxt_bids.store(p, q)
            for p, q in asks_f:
                ccxt_asks.store(p, q)
        their_rates.append(levels / (time.perf_counter() - t0))
    best_ours = book.best_bid()
    if best_ours is None or round(ccxt_bids[0][0] / TICK) != best_ours[0]:
        raise RuntimeError("both books must agree on the best bid")
    return {
        "level_updates": levels,
        "messages": len(ours),
        "ours_level_updates_per_s": statistics.median(our_rates),
        "ccxt_level_updates_per_s": statistics.median(their_rates),
    }


# -- the minimal Binance USD-M server (another process) --------------------------------------


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


async def read_ws_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytearray(await reader.readexactly(n))
    for i in range(n):
        data[i] ^= mask[i % 4]
    return b0 & 0x0F, bytes(data)


class ReplayServer:
    """Serves exchangeInfo, the recorded depth snapshot and the depth stream (burst or paced)."""

    def __init__(self, exchange_info: bytes, snapshot: bytes, frames: list[bytes], rate: float):
        self.exchange_info = exchange_info
        self.snapshot = snapshot
        self.frames = frames
        self.rate = rate
        self.snapshot_served = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        line, *rest = head.split("\r\n")
        path = line.split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)}
        if headers.get("upgrade", "").lower() == "websocket":
            await self.websocket(reader, writer, headers["sec-websocket-key"])
            return
        if path.startswith("/fapi/v1/exchangeInfo"):
            body = self.exchange_info
        elif path.startswith("/fapi/v1/depth"):
            body = self.snapshot
            self.snapshot_served.set()
        else:
            body = b'{"code":-1,"msg":"not served here"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async def websocket(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str
    ) -> None:
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()  # noqa: S324  the websocket handshake is defined with SHA-1
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        try:
            _opcode, data = await read_ws_frame(reader)
            request = orjson.loads(data)
            writer.write(ws_frame(orjson.dumps({"result": None, "id": request["id"]})))
            await writer.drain()
            if not any("@depth" in p for p in request["params"]):
                await reader.read()  # trade subscriptions: nothing to send, stay open
                return
            self.snapshot_served.clear()
            await asyncio.wait_for(self.snapshot_served.wait(), 10.0)
            await asyncio.sleep(0.05)
            if self.rate > 0:
                await self.paced(writer)
            else:
                await self.burst(writer)
            await reader.read()  # hold the connection until the client leaves
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def burst(self, writer: asyncio.StreamWriter) -> None:
        frames = self.frames
        for i in range(0, len(frames), 256):
            if writer.is_closing():
                return
            writer.write(b"".join(frames[i : i + 256]))
            await writer.drain()

    async def paced(self, writer: asyncio.StreamWriter) -> None:
        """Frames at `rate` per second: every wake-up (about every 0.5 ms) sends the frames
        that are due, as an exchange's frames also arrive a few at a time."""
        count = int(self.rate * PACED_SECONDS)
        frames = self.frames
        start = time.perf_counter()
        sent = 0
        while sent < count:
            due = min(count, int((time.perf_counter() - start) * self.rate) + 1)
            if writer.is_closing():
                return
            while sent < due:
                writer.write(frames[sent % len(frames)])
                sent += 1
            await writer.drain()
            await asyncio.sleep(0.0005)


def fetch_exchange_info() -> bytes:
    """The simulator's USD-M exchangeInfo (BTCUSDT: tick 0.1, lot 0.001, as recorded)."""

    async def run() -> bytes:
        import aiohttp  # noqa: PLC0415

        from mm_daemon.sim.runner import start_simulator  # noqa: PLC0415

        handle = await start_simulator(SimConfig(assets=("BTC",)))
        try:
            await asyncio.sleep(0)  # let the market driver start before it is stopped
            url = handle.endpoint("sim-perp").rest + "/fapi/v1/exchangeInfo"
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return await resp.read()
        finally:
            await handle.stop()

    return asyncio.run(run())


def server_main(conn: Any, data_dir: str) -> None:
    # A client that leaves mid-stream makes asyncio warn on every later write: not news here.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    snapshot, payloads = load_stream(Path(data_dir))
    frames = [ws_frame(orjson.dumps(p)) for p in payloads]
    exchange_info = fetch_exchange_info()
    snap = orjson.dumps(snapshot)

    async def run() -> None:
        burst = ReplayServer(exchange_info, snap, frames, 0.0)
        paced = ReplayServer(exchange_info, snap, frames, PACED_RATE)
        s1 = await asyncio.start_server(burst.handle, "127.0.0.1", 0)
        s2 = await asyncio.start_server(paced.handle, "127.0.0.1", 0)
        conn.send((s1.sockets[0].getsockname()[1], s2.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    asyncio.run(run())


# -- 2. adapter vs bare ccxt -----------------------------------------------------------------


def venue_config(port: int) -> VenueConfig:
    return VenueConfig(
        name="bench-usdm",
        exchange="binanceusdm",
        endpoint=f"http://127.0.0.1:{port}",
    )


@contextlib.contextmanager
def compiled_readers(*, enabled: bool) -> Iterator[None]:
    """Run the native stream with its compiled readers on or off (the Python fallback)."""
    from mm_daemon.venues import binance_stream  # noqa: PLC0415

    saved = binance_stream.compiled_frame_parser, binance_stream.compiled_apply_side
    if not enabled:
        binance_stream.compiled_frame_parser = None
        binance_stream.compiled_apply_side = None
    try:
        yield
    finally:
        binance_stream.compiled_frame_parser, binance_stream.compiled_apply_side = saved


async def adapter_run(
    port: int,
    index_of: dict[int, int],
    final_u: int,
    *,
    compiled: bool = True,
) -> tuple[float, float]:
    """(messages per second, messages per CPU-second of this process) through the adapter."""
    with compiled_readers(enabled=compiled):
        return await _adapter_run(port, index_of, final_u)


async def _adapter_run(port: int, index_of: dict[int, int], final_u: int) -> tuple[float, float]:
    from mm_daemon.venues.ccxt_venue import CcxtMarketData  # noqa: PLC0415

    md = CcxtMarketData(
        venue_config(port),
        MarketDataConfig(stale_after_seconds=30.0),
        symbols=["BTC/USDT:USDT"],
    )
    await md.connect()
    state = MarketState(
        md.instruments["BTC/USDT:USDT"],
        fair_value_model="microprice",
        book=md.book("BTC/USDT:USDT"),
        book_is_shared=True,
    )
    done = asyncio.Event()
    first: list[tuple[int, int]] = []
    end: list[int] = []
    # CPU time of this process over the stream: on a shared machine it moves less with the
    # load than the wall clock does.
    cpu: list[float] = []

    def sink(event: MarketEvent) -> None:
        if type(event) is BookDelta:
            state.on_event(event)
            if not first:
                first.append((index_of[event.last_update_id], event.ts_local_ns))
                cpu.append(time.process_time())
            if event.last_update_id == final_u:
                end.append(time.time_ns())
                cpu.append(time.process_time())
                done.set()
        elif type(event) is BookSnapshot:
            state.on_event(event)

    task = asyncio.get_running_loop().create_task(md.run(sink))
    try:
        await asyncio.wait_for(done.wait(), 60.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await md.close()
    i0, t0 = first[0]
    messages = index_of[final_u] - i0
    return messages / ((end[0] - t0) / 1e9), messages / (cpu[1] - cpu[0])


async def ccxt_run(port: int, index_of: dict[int, int], final_u: int) -> float:
    from mm_daemon.venues.exchanges import create_exchange  # noqa: PLC0415

    exchange = create_exchange(venue_config(port))
    try:
        await exchange.load_markets()
        first: tuple[int, float] | None = None
        while True:
            ob = await exchange.watch_order_book("BTC/USDT:USDT")
            now = time.time_ns()
            nonce = ob["nonce"]
            if first is None and nonce in index_of:
                first = (index_of[nonce], now)
            if nonce == final_u and first is not None:
                return (index_of[final_u] - first[0]) / ((now - first[1]) / 1e9)
    finally:
        await exchange.close()


class _IdleTransport:
    """What picows' protocol asks of a transport, on an idle loopback socket of its own (the
    protocol sets socket options on it); what the protocol writes (its upgrade request) is kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        self.sock.close()

    abort = close


def open_in_process(on_message: Any) -> tuple[Any, _IdleTransport]:
    """The websocket client's protocol (picows' own, with the daemon's listener) past its
    handshake, with no socket read: `feed(protocol, chunk)` hands it bytes as the loop does.
    picows' protocol class is not part of its public API: this follows `picows.ws_connect`."""
    import picows  # noqa: PLC0415
    from picows.picows import WSProtocol  # noqa: PLC0415

    from mm_daemon.venues.websocket import WsClient  # noqa: PLC0415

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    server.close()
    protocol = WSProtocol(
        host_port="bench:1",
        ws_path="/",
        is_client_side=True,
        ws_listener_factory=lambda: WsClient(on_message),
        logger=logging.getLogger("bench.picows"),
        disconnect_on_exception=True,
        websocket_handshake_timeout=None,
        enable_auto_ping=False,
        auto_ping_idle_timeout=10.0,
        auto_ping_reply_timeout=10.0,
        auto_ping_strategy=picows.WSAutoPingStrategy.PING_WHEN_IDLE,
        enable_auto_pong=False,  # pings reach the listener, as `ws_connect` sets it
        max_frame_size=10 * 1024 * 1024,
        extra_headers=None,
        read_buffer_init_size=16 * 1024,
    )
    transport = _IdleTransport(client)
    protocol.connection_made(transport)
    request = transport.written[0].decode()
    key = next(
        line.split(":", 1)[1].strip()
        for line in request.split("\r\n")
        if line.lower().startswith("sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())  # noqa: S324  the websocket handshake is defined with SHA-1
    feed(
        protocol,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + b"Sec-WebSocket-Accept: "
        + accept
        + b"\r\n\r\n",
    )
    return protocol, transport


def feed(protocol: Any, data: bytes) -> None:
    """What the loop does with bytes it reads for a buffered protocol: read into the protocol's
    buffer (as much as it offers), then `buffer_updated`."""
    view = memoryview(data)
    at = 0
    while at < len(view):
        buffer = protocol.get_buffer(-1)
        n = min(len(buffer), len(view) - at)
        buffer[:n] = view[at : at + n]
        protocol.buffer_updated(n)
        at += n


def chunk_path_us(
    snapshot: dict[str, Any], payloads: list[dict[str, Any]], *, compiled: bool = True
) -> float:
    """Microseconds per message from wire bytes (64 KiB chunks) to fair value, no socket."""
    from mm_daemon.binance.frames import parse_levels  # noqa: PLC0415
    from mm_daemon.core.types import Instrument, InstrumentKind  # noqa: PLC0415
    from mm_daemon.venues.binance_stream import NativeStream  # noqa: PLC0415

    inst = Instrument(
        "bench", "BTC/USDT:USDT", "BTCUSDT", InstrumentKind.PERPETUAL, "BTC", "USDT", TICK, LOT
    )
    wire = b"".join(ws_frame(orjson.dumps(p)) for p in payloads)
    chunks = [wire[i : i + 65_536] for i in range(0, len(wire), 65_536)]

    async def no_fetch(_symbol: str) -> Any:
        return snapshot

    async def run() -> float:
        stream = NativeStream(
            venue="bench",
            ws_url="ws://127.0.0.1:1/",
            instrument=inst,
            kind="depth",
            usdm=True,
            sink=lambda _event: None,
            fetch_snapshot=no_fetch,
        )
        state = MarketState(inst, book=stream.book, book_is_shared=True)
        stream.sink = state.on_event
        stream.sync.on_snapshot(
            snapshot["lastUpdateId"],
            parse_levels(snapshot["bids"], TICK, LOT),
            parse_levels(snapshot["asks"], TICK, LOT),
        )
        protocol, transport = open_in_process(stream.frame_handler)  # only frames are measured
        gc.collect()
        t0 = time.perf_counter()
        for chunk in chunks:
            feed(protocol, chunk)
        elapsed = time.perf_counter() - t0
        transport.close()
        if stream.book.update_id != payloads[-1]["u"] or state.fair_value_ticks is None:
            raise RuntimeError("the chunked replay must apply every diff")
        return elapsed / len(payloads) * 1e6

    with compiled_readers(enabled=compiled):
        return asyncio.run(run())


def processing_latency(snapshot: dict[str, Any], payloads: list[dict[str, Any]]) -> dict:
    """Per frame, in process (no socket): frame bytes handed to the reader -> fair value
    updated by the MarketState in the sink; p50/p99 over the whole stream."""
    from mm_daemon.binance.frames import parse_levels  # noqa: PLC0415
    from mm_daemon.core.types import Instrument, InstrumentKind  # noqa: PLC0415
    from mm_daemon.venues.binance_stream import NativeStream  # noqa: PLC0415

    inst = Instrument(
        "bench", "BTC/USDT:USDT", "BTCUSDT", InstrumentKind.PERPETUAL, "BTC", "USDT", TICK, LOT
    )

    async def no_fetch(_symbol: str) -> Any:
        return snapshot

    stream = NativeStream(
        venue="bench",
        ws_url="ws://127.0.0.1:1/",
        instrument=inst,
        kind="depth",
        usdm=True,
        sink=lambda _event: None,
        fetch_snapshot=no_fetch,
    )
    state = MarketState(inst, book=stream.book, book_is_shared=True)
    stream.sink = state.on_event
    stream.sync.on_snapshot(
        snapshot["lastUpdateId"],
        parse_levels(snapshot["bids"], TICK, LOT),
        parse_levels(snapshot["asks"], TICK, LOT),
    )
    frames = [orjson.dumps(p) for p in payloads]
    samples = []
    clock = time.perf_counter_ns
    on_frame = stream.frame_handler
    for frame in frames:
        t0 = clock()
        on_frame(frame, 0)
        samples.append(clock() - t0)
    if not stream.book.synced or state.fair_value_ticks is None:
        raise RuntimeError("the in-process replay must stay in sync")
    samples.sort()
    n = len(samples)
    return {"samples": n, "p50_us": samples[n // 2] / 1e3, "p99_us": samples[int(n * 0.99)] / 1e3}


async def latency_run(port: int, *, busy_poll: bool = False) -> dict[str, float]:
    from mm_daemon.engine.runtime import BusyPoll  # noqa: PLC0415
    from mm_daemon.venues.ccxt_venue import CcxtMarketData  # noqa: PLC0415

    poller = BusyPoll(asyncio.get_running_loop())
    if busy_poll:  # as the daemon runs with `runtime.busy_poll: true`
        poller.start()

    md = CcxtMarketData(
        venue_config(port),
        MarketDataConfig(stale_after_seconds=30.0),
        symbols=["BTC/USDT:USDT"],
    )
    await md.connect()
    # ccxt's markets make a large, long-lived heap: move it out of the collector's way (as the
    # daemon should once started), or full collections pause the loop for 0.1 s and more.
    gc.collect()
    gc.freeze()
    state = MarketState(
        md.instruments["BTC/USDT:USDT"],
        fair_value_model="microprice",
        book=md.book("BTC/USDT:USDT"),
        book_is_shared=True,
    )
    samples: list[int] = []
    firsts: list[int] = []  # the first frame of each chunk: no frame ahead of it to wait for
    expected = int(PACED_RATE * PACED_SECONDS)
    done = asyncio.Event()
    time_ns = time.time_ns
    on_event = state.on_event
    last_chunk = [0]

    def sink(event: MarketEvent) -> None:
        if type(event) is BookDelta:
            on_event(event)
            latency = time_ns() - event.ts_local_ns  # fair value is updated now
            samples.append(latency)
            if event.ts_local_ns != last_chunk[0]:
                last_chunk[0] = event.ts_local_ns
                firsts.append(latency)
            if len(samples) >= expected - 50:
                done.set()
        else:
            on_event(event)

    task = asyncio.get_running_loop().create_task(md.run(sink))
    try:
        await asyncio.wait_for(done.wait(), PACED_SECONDS + 30.0)
    finally:
        poller.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await md.close()
    samples.sort()
    firsts.sort()
    n = len(samples)
    m = len(firsts)
    return {
        "samples": n,
        "chunks": m,
        "p50_us": samples[n // 2] / 1e3,
        "p99_us": samples[int(n * 0.99)] / 1e3,
        "max_us": samples[-1] / 1e3,
        "first_in_chunk_p50_us": firsts[m // 2] / 1e3,
        "first_in_chunk_p99_us": firsts[int(m * 0.99)] / 1e3,
    }


# -- 4. RSS ----------------------------------------------------------------------------------


def sim_main(conn: Any) -> None:
    async def run() -> None:
        from mm_daemon.sim.runner import start_simulator  # noqa: PLC0415

        # BTC alone: the daemon reads one market, and the figures predate ETH's books.
        handle = await start_simulator(SimConfig(assets=("BTC",)))
        conn.send({k: v.rest for k, v in handle.endpoints.items()})
        await asyncio.Event().wait()

    asyncio.run(run())


def rss_main(conn: Any, endpoints: dict[str, str]) -> None:
    """Two venues' adapters + market states for 5 s; reports VmRSS in MB."""
    import uvloop  # noqa: PLC0415

    from mm_daemon.venues.ccxt_venue import CcxtMarketData  # noqa: PLC0415

    async def run() -> float:
        mds = [
            CcxtMarketData(
                VenueConfig(name="sim-spot", exchange="binance"),
                MarketDataConfig(),
                symbols=["BTC/USDT"],
                sim_base_url=endpoints["sim-spot"],
            ),
            CcxtMarketData(
                VenueConfig(name="sim-perp", exchange="binanceusdm"),
                MarketDataConfig(),
                symbols=["BTC/USDT:USDT"],
                sim_base_url=endpoints["sim-perp"],
            ),
        ]
        states: dict[str, MarketState] = {}
        tasks = []
        for md in mds:
            await md.connect()
            sym = next(iter(md.instruments))
            states[md.venue] = MarketState(
                md.instruments[sym], book=md.book(sym), book_is_shared=True
            )
            tasks.append(asyncio.get_running_loop().create_task(md.run(states[md.venue].on_event)))
        await asyncio.sleep(5.0)  # let both venues stream for a while
        rss = read_rss_mb()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for md in mds:
            await md.close()
        return rss

    conn.send(uvloop.run(run()))


def read_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--baseline",
        choices=("python",),
        help="also run the adapter without its compiled readers, interleaved",
    )
    args = parser.parse_args()
    data_dir = default_data_dir() if default_data_dir().is_dir() else None
    if data_dir is None:
        print("recorded captures absent (set MMD_DATA_DIR); nothing measured")
        return
    import uvloop  # noqa: PLC0415

    snapshot, payloads = load_stream(data_dir)
    index_of = {p["u"]: i for i, p in enumerate(payloads)}
    final_u = payloads[-1]["u"]
    levels_per_msg = sum(len(p["b"]) + len(p["a"]) for p in payloads) / len(payloads)
    print(
        f"stream: {len(payloads):,} diffs of <= {MAX_LEVELS} levels "
        f"({levels_per_msg:.1f} levels/diff on average) from the recorded BTC USD-M capture"
    )

    baseline = args.baseline is not None
    books = bench_books(snapshot, payloads, args.repeats)
    processing = processing_latency(snapshot, payloads)
    chunk_us: list[float] = []
    chunk_us_base: list[float] = []
    for i in range(args.repeats + 1):  # the first round fills each version's level memo
        if baseline and i % 2:
            chunk_us_base.append(chunk_path_us(snapshot, payloads, compiled=False))
        chunk_us.append(chunk_path_us(snapshot, payloads))
        if baseline and not i % 2:
            chunk_us_base.append(chunk_path_us(snapshot, payloads, compiled=False))
    del chunk_us[0]
    if chunk_us_base:
        del chunk_us_base[0]

    # The recorded stream held in this process is a heap of about a million objects that the
    # daemon does not have: out of the collector's way, as the daemon freezes its startup heap,
    # so that no contender pays for scanning it.
    gc.collect()
    gc.freeze()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=server_main, args=(child, str(data_dir)), daemon=True)
    server.start()
    burst_port, paced_port = parent.recv()
    # The feed and the reader on one core each, as the daemon runs on a core of its own: a
    # busy-polling reader that shares a core with the feed would take turns with it.
    cores = sorted(os.sched_getaffinity(0))
    all_cores = set(cores)
    if len(cores) >= 2 and server.pid is not None:
        os.sched_setaffinity(server.pid, {cores[1]})
        os.sched_setaffinity(0, {cores[0]})
    adapter_rates, ccxt_rates, base_rates, adapter_cpu_rates = [], [], [], []
    try:
        for i in range(args.repeats):
            # Alternate which adapter runs right after the ccxt loop (its garbage and caches).
            if baseline and i % 2:
                base_rates.append(
                    uvloop.run(adapter_run(burst_port, index_of, final_u, compiled=False))[0]
                )
            rate, cpu_rate = uvloop.run(adapter_run(burst_port, index_of, final_u))
            adapter_rates.append(rate)
            adapter_cpu_rates.append(cpu_rate)
            if baseline and not i % 2:
                base_rates.append(
                    uvloop.run(adapter_run(burst_port, index_of, final_u, compiled=False))[0]
                )
            ccxt_rates.append(uvloop.run(ccxt_run(burst_port, index_of, final_u)))
        # Paced runs, sleeping and busy-polling loops alternated; medians of each statistic.
        paced: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for i in range(max(2, args.repeats // 2) * 2):
            busy = bool(i % 2)
            paced[busy].append(uvloop.run(latency_run(paced_port, busy_poll=busy)))
        latency, latency_busy = (
            {k: statistics.median(r[k] for r in paced[busy]) for k in paced[busy][0]}
            for busy in (False, True)
        )
    finally:
        server.terminate()
        server.join()
        os.sched_setaffinity(0, all_cores)

    sim_parent, sim_child = ctx.Pipe()
    sim = ctx.Process(target=sim_main, args=(sim_child,), daemon=True)
    sim.start()
    try:
        endpoints = sim_parent.recv()
        rss_parent, rss_child = ctx.Pipe()
        rss_proc = ctx.Process(target=rss_main, args=(rss_child, endpoints))
        rss_proc.start()
        rss_mb = rss_parent.recv()
        rss_proc.join()
    finally:
        sim.terminate()
        sim.join()

    adapter = statistics.median(adapter_rates)
    bare = statistics.median(ccxt_rates)
    rows = [
        ("local book, level updates/s", books["ours_level_updates_per_s"], ">= 1,000,000"),
        ("ccxt.pro OrderBook, level updates/s", books["ccxt_level_updates_per_s"], ""),
        (
            "  ratio ours / ccxt",
            books["ours_level_updates_per_s"] / books["ccxt_level_updates_per_s"],
            "",
        ),
        ("adapter, messages/s", adapter, ">= 60,000"),
        ("  messages per CPU-second", statistics.median(adapter_cpu_rates), ""),
        ("bare ccxt.pro watch_order_book, messages/s", bare, ""),
        ("  ratio adapter / ccxt", adapter / bare, ">= 3"),
        (f"receipt -> fair value p50 us @ {PACED_RATE:,.0f} msg/s", latency["p50_us"], ""),
        (f"receipt -> fair value p99 us @ {PACED_RATE:,.0f} msg/s", latency["p99_us"], "<= 200"),
        ("  first frame of each chunk, p50 us", latency["first_in_chunk_p50_us"], ""),
        ("  first frame of each chunk, p99 us", latency["first_in_chunk_p99_us"], ""),
        ("  same, busy-polling loop: p50 us", latency_busy["p50_us"], ""),
        ("  same, busy-polling loop: p99 us", latency_busy["p99_us"], "<= 200"),
        ("frame -> fair value in process, p50 us", processing["p50_us"], ""),
        ("frame -> fair value in process, p99 us", processing["p99_us"], ""),
        ("64 KiB chunks -> fair value in process, us/msg", statistics.median(chunk_us), ""),
        ("RSS, two venues' adapters, MB", rss_mb, "< 200"),
    ]
    if baseline:
        base = statistics.median(base_rates)
        base_chunk = statistics.median(chunk_us_base)
        rows += [
            (f"baseline {args.baseline}: adapter, messages/s", base, ""),
            ("  ratio adapter now / baseline", adapter / base, ""),
            (f"baseline {args.baseline}: 64 KiB chunks, us/msg", base_chunk, ""),
            ("  ratio chunk path now / baseline", statistics.median(chunk_us) / base_chunk, ""),
        ]
    print(f"{'measure':48} {'median':>14}  target   (load average {os.getloadavg()[0]:.1f})")
    for name, value, target in rows:
        print(f"{name:48} {value:>14,.1f}  {target}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "cpu_count": os.cpu_count(),
                "repeats": args.repeats,
                "stream": {
                    "diffs": len(payloads),
                    "max_levels_per_diff": MAX_LEVELS,
                    "mean_levels_per_diff": levels_per_msg,
                },
                "book": books,
                "adapter_messages_per_s": {"median": adapter, "runs": adapter_rates},
                "adapter_messages_per_cpu_s": {
                    "median": statistics.median(adapter_cpu_rates),
                    "runs": adapter_cpu_rates,
                },
                "ccxt_watch_order_book_messages_per_s": {"median": bare, "runs": ccxt_rates},
                "adapter_over_ccxt": adapter / bare,
                "receipt_to_fair_value": {"rate_per_s": PACED_RATE, **latency},
                "receipt_to_fair_value_busy_poll": {"rate_per_s": PACED_RATE, **latency_busy},
                "paced_runs": {"sleeping": paced[False], "busy_poll": paced[True]},
                "frame_to_fair_value_in_process": processing,
                "chunks_to_fair_value_in_process_us_per_msg": {
                    "median": statistics.median(chunk_us),
                    "runs": chunk_us,
                },
                "baseline": None
                if not baseline
                else {
                    "commit": args.baseline,
                    "adapter_messages_per_s": {
                        "median": statistics.median(base_rates),
                        "runs": base_rates,
                    },
                    "chunks_to_fair_value_in_process_us_per_msg": {
                        "median": statistics.median(chunk_us_base),
                        "runs": chunk_us_base,
                    },
                },
                "load_average_1m": os.getloadavg()[0],
                "rss_two_venues_mb": rss_mb,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
