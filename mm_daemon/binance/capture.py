"""The capture format: Binance market data as received, for recording and replay.

One gzip text file per market, one message a line: `<local receive ns> <raw JSON>`, where the
JSON is the REST depth snapshot the book synced on, or a combined-stream envelope
`{"stream":"<name>","data":<frame as the exchange sent it>}` of a depth diff, a trade or a
bookTicker. The frames are the bytes the websocket delivered, untouched; the receive time is
the one the live adapter stamped on them. Files live in `<folder>/spot/` or `<folder>/usdm/`
as `<symbol>_<date or UTC start>.gz`; a market's files are replayed in name order (the
shipped spot captures span two files chained by date).

The recorded captures shipped beside the project are found through `default_data_dir()`:
`$MMD_DATA_DIR`, else `shared/data/binance` beside the repository.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from mm_daemon.binance.markets import Dialect, dialect_of
from mm_daemon.core.types import Instrument

__all__ = [
    "DATA_DIR_ENV",
    "CaptureRecorder",
    "CaptureWriter",
    "FrameKind",
    "RecordedFrame",
    "capture_files",
    "default_data_dir",
    "envelope_payload",
    "iter_frames",
    "read_capture",
    "read_frames",
    "read_raw_frames",
]

DATA_DIR_ENV = "MMD_DATA_DIR"
_ANSWER = b'{"result"'  # Binance's answer to a SUBSCRIBE: {"result":null,"id":1}
_STREAM_PREFIX = b'{"stream":"'
_DATA_KEY = b'"data":'


def default_data_dir() -> Path:
    """$MMD_DATA_DIR, else `shared/data/binance` beside the repository root (which may not
    exist: callers check `is_dir()` and say what is missing)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "data" / "binance"


def capture_files(data_dir: Path, dialect: Dialect, symbol: str) -> list[Path]:
    """The capture files of one market in replay order (e.g. spot/btcusdt_2024080[89].gz)."""
    folder = data_dir / dialect
    return sorted(folder.glob(f"{symbol.lower()}_*.gz"))


# -- writing -----------------------------------------------------------------------------------


class CaptureWriter:
    """One market's capture file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = gzip.GzipFile(path, "wb", compresslevel=6)
        self.frames = 0
        self.snapshots = 0

    def frame(self, stream: bytes, raw: bytes, local_ns: int) -> None:
        """A stream frame as received, wrapped in the combined-stream envelope (answers to our
        own requests on the socket, such as the SUBSCRIBE acknowledgement, are not market data
        and are left out)."""
        if raw.startswith(_ANSWER):
            return
        self._file.write(b'%d {"stream":"%s","data":%s}\n' % (local_ns, stream, raw))
        self.frames += 1

    def snapshot(self, data: Any, local_ns: int) -> None:
        """A REST depth snapshot (`{"lastUpdateId":..,"bids":..,"asks":..}`)."""
        self._file.write(b"%d %s\n" % (local_ns, orjson.dumps(data)))
        self.snapshots += 1

    def close(self) -> None:
        self._file.close()


class CaptureRecorder:
    """Capture files of a recording, one per market, made on first use; a folder holding one
    recording is a data folder for `mm-daemon replay --data-dir`."""

    def __init__(self, folder: Path, started_ns: int | None = None) -> None:
        self.folder = folder
        moment = datetime.fromtimestamp((started_ns or time.time_ns()) / 1e9, UTC)
        self._stamp = moment.strftime("%Y%m%dT%H%M%S")
        self.writers: dict[str, CaptureWriter] = {}

    def writer(self, instrument: Instrument) -> CaptureWriter:
        name = f"{dialect_of(instrument)}/{instrument.exchange_symbol.lower()}_{self._stamp}.gz"
        writer = self.writers.get(name)
        if writer is None:
            writer = self.writers[name] = CaptureWriter(self.folder / name)
        return writer

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


# -- reading -----------------------------------------------------------------------------------


class FrameKind(StrEnum):
    SNAPSHOT = "snapshot"
    DEPTH = "depth"
    TRADE = "trade"
    BOOK_TICKER = "bookTicker"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One recorded message. `raw` is the line's JSON as Binance sent it (a combined-stream
    envelope, or the REST snapshot); `data` is the parsed payload (the envelope's `data`)."""

    local_ns: int
    raw: bytes
    kind: FrameKind
    stream: str  # e.g. "btcusdt@depth@100ms"; "" for the REST snapshot
    data: dict[str, Any]

    @property
    def payload_raw(self) -> bytes:
        """The payload's raw JSON (what a single-stream `/ws` connection receives)."""
        return envelope_payload(self.raw) if self.stream else self.raw


def envelope_payload(raw: bytes) -> bytes:
    """The raw `data` of a combined-stream envelope (`raw` itself when it has none)."""
    start = raw.find(_DATA_KEY)
    return raw[start + len(_DATA_KEY) : raw.rindex(b"}")] if start >= 0 else raw


def _kind(stream: str) -> FrameKind:
    if "@depth" in stream:
        return FrameKind.DEPTH
    if stream.endswith("@trade"):
        return FrameKind.TRADE
    if stream.endswith("@bookTicker"):
        return FrameKind.BOOK_TICKER
    return FrameKind.OTHER


def read_capture(*paths: Path) -> Iterator[tuple[int, bytes]]:
    """(local receive ns, raw JSON bytes) of every line of the given files, file after file."""
    for path in paths:
        with gzip.open(path, "rb") as fh:
            for line in fh:
                space = line.find(b" ")
                if space <= 0:
                    continue
                yield int(line[:space]), line[space + 1 :].rstrip(b"\r\n")


def read_raw_frames(
    paths: Iterable[Path],
) -> Generator[tuple[int, FrameKind, str, bytes], None, None]:
    """(local receive ns, kind, stream name, raw JSON line) of the frames and snapshots of the
    given files, in order; the JSON is not parsed (the stream name is read off the envelope)."""
    for local_ns, raw in read_capture(*paths):
        if raw.startswith(_STREAM_PREFIX):
            end = raw.find(b'"', len(_STREAM_PREFIX))
            stream = raw[len(_STREAM_PREFIX) : end].decode()
            yield local_ns, _kind(stream), stream, raw
        elif b'"lastUpdateId"' in raw[:32]:
            yield local_ns, FrameKind.SNAPSHOT, "", raw


def read_frames(paths: Iterable[Path]) -> Iterator[RecordedFrame]:
    """Frames of the given capture files, parsed, in order, file after file."""
    for local_ns, kind, stream, raw in read_raw_frames(paths):
        msg = orjson.loads(raw)
        yield RecordedFrame(local_ns, raw, kind, stream, msg["data"] if stream else msg)


def iter_frames(data_dir: Path, dialect: Dialect, symbol: str) -> Iterator[RecordedFrame]:
    """Frames of one recorded market (`symbol` like "btcusdt"); raises if none is recorded."""
    paths = capture_files(data_dir, dialect, symbol)
    if not paths:
        raise FileNotFoundError(f"no {dialect} capture of {symbol} under {data_dir}")
    return read_frames(paths)
