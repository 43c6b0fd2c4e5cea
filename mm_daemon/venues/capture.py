"""Recording Binance market data in the capture format `mm-daemon replay` reads.

One gzip text file per market, one message a line: `<local receive ns> <raw JSON>`, where the
JSON is the REST depth snapshot the book synced on, or a combined-stream envelope
`{"stream":"<name>","data":<frame as the exchange sent it>}` of a depth diff or a trade. The
frames are the bytes the websocket delivered, untouched; the receive time is the one the live
adapter stamps on them. Files go to `<folder>/spot/` or `<folder>/usdm/` as
`<symbol>_<UTC start, YYYYmmddTHHMMSS>.gz`, so a folder holding one recording is a data folder
for `mm-daemon replay --data-dir`.
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from mm_daemon.core.types import Instrument, InstrumentKind

__all__ = ["CaptureRecorder", "CaptureWriter"]

_ANSWER = b'{"result"'  # Binance's answer to a SUBSCRIBE: {"result":null,"id":1}


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
    """Capture files of a recording, one per market, made on first use."""

    def __init__(self, folder: Path, started_ns: int | None = None) -> None:
        self.folder = folder
        moment = datetime.fromtimestamp((started_ns or time.time_ns()) / 1e9, UTC)
        self._stamp = moment.strftime("%Y%m%dT%H%M%S")
        self.writers: dict[str, CaptureWriter] = {}

    def writer(self, instrument: Instrument) -> CaptureWriter:
        dialect = "spot" if instrument.kind is InstrumentKind.SPOT else "usdm"
        name = f"{dialect}/{instrument.exchange_symbol.lower()}_{self._stamp}.gz"
        writer = self.writers.get(name)
        if writer is None:
            writer = self.writers[name] = CaptureWriter(self.folder / name)
        return writer

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
