"""Binance USD-M mark price and funding read natively: `<symbol>@markPrice@1s` into `MarkPrice`.

Each `markPriceUpdate` (`{"e":"markPriceUpdate","E":..,"s":"BTCUSDT","p":mark,"i":index,
"P":estimated settle price,"r":funding rate,"T":next funding time}`) becomes a core `MarkPrice`
event; paper mode settles funding from them (`mm_daemon.core.funding`). One connection carries
every perpetual symbol of a venue, on its own socket (the mark price streams are Binance's
"market" category, apart from the book streams). A malformed frame is counted and skipped.
`run_once` connects, subscribes and reads until the connection ends; the caller supervises it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
import structlog

from mm_daemon.core.types import Instrument, MarketEvent, MarkPrice
from mm_daemon.venues.websocket import OP_TEXT, WsConnection, WsConnector, ws_connect

__all__ = ["MarkPriceReader", "mark_price_from_frame"]

log = structlog.get_logger(__name__)

_MS = 1_000_000


def mark_price_stream(instrument: Instrument) -> str:
    return f"{instrument.exchange_symbol.lower()}@markPrice@1s"


def mark_price_from_frame(
    data: Mapping[str, Any], instrument: Instrument, ts_local_ns: int
) -> MarkPrice:
    """A `markPriceUpdate` as a core event; KeyError/TypeError/ValueError when malformed."""
    return MarkPrice(
        venue=instrument.venue,
        symbol=instrument.symbol,
        ts_exchange_ns=int(data["E"]) * _MS,
        ts_local_ns=ts_local_ns,
        mark_price=float(data["p"]),
        index_price=float(data["i"]),
        funding_rate=float(data["r"]),
        next_funding_time_ns=int(data["T"]) * _MS,
    )


class MarkPriceReader:
    """The mark price stream of every perpetual of one venue (see the module docstring)."""

    def __init__(
        self,
        venue: str,
        ws_url: str,
        instruments: list[Instrument],
        sink: Callable[[MarketEvent], None],
        *,
        on_malformed: Callable[[], None] | None = None,
        connector: WsConnector | None = None,
    ) -> None:
        self.venue = venue
        self.ws_url = ws_url
        self._by_id = {i.exchange_symbol: i for i in instruments}
        self._sink = sink
        self._on_malformed = on_malformed
        self._connect = connector or ws_connect
        self._ws: WsConnection | None = None
        self.updates = 0
        self.malformed = 0

    async def run_once(self) -> None:
        ws = await self._connect(self.ws_url, self.on_message)
        self._ws = ws
        try:
            streams = [mark_price_stream(i) for i in self._by_id.values()]
            ws.send(OP_TEXT, orjson.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}))
            await ws.closed
        finally:
            self._ws = None
            ws.close()

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()

    def on_message(self, raw: bytes, ts_local_ns: int) -> None:
        try:
            data = orjson.loads(raw)
            if "stream" in data and "data" in data:
                data = data["data"]
            if data.get("e") != "markPriceUpdate":
                return  # the answer to our SUBSCRIBE
            instrument = self._by_id.get(str(data.get("s")))
            if instrument is None:
                return
            event = mark_price_from_frame(data, instrument, ts_local_ns)
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            self.malformed += 1
            if self._on_malformed is not None:
                self._on_malformed()
            log.warning("malformed mark price frame", venue=self.venue, error=repr(exc))
            return
        self.updates += 1
        self._sink(event)
