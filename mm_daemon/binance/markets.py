"""Binance's markets as the protocol names them: dialects, exchange ids, streams, URLs.

One table maps a ccxt exchange id to its dialect (`binance` is spot, `binanceusdm` USD-M
futures); everything that speaks the protocol (the live adapter, order entry, recording,
replay and the simulator) reads it from here.
"""

from __future__ import annotations

from typing import Any, Literal

from mm_daemon.core.types import Instrument, InstrumentKind

__all__ = [
    "CCXT_IDS",
    "DEPTH_RATE",
    "DIALECTS",
    "Dialect",
    "StreamKind",
    "ccxt_options",
    "ccxt_test_urls",
    "dialect_of",
    "recorded_instrument",
    "stream_name",
]

Dialect = Literal["spot", "usdm"]
"""Binance spot (`/api/v3`, `/ws`, WS-API v3) or USD-M futures (`/fapi`, `pu` in depth)."""

DIALECTS: dict[str, Dialect] = {"binance": "spot", "binanceusdm": "usdm"}
"""ccxt exchange id -> dialect, for the exchanges read natively and served by the simulator."""

CCXT_IDS: dict[Dialect, str] = {dialect: ccxt_id for ccxt_id, dialect in DIALECTS.items()}

DEPTH_RATE = "100ms"
"""Diff-depth stream rate, the one ccxt subscribes to (both spot and USD-M serve it)."""

StreamKind = Literal["depth", "trade"]


def dialect_of(instrument: Instrument) -> Dialect:
    return "spot" if instrument.kind is InstrumentKind.SPOT else "usdm"


def stream_name(exchange_symbol: str, kind: StreamKind) -> str:
    """`btcusdt@depth@100ms` or `btcusdt@trade` for the venue id `BTCUSDT`."""
    lower = exchange_symbol.lower()
    return f"{lower}@depth@{DEPTH_RATE}" if kind == "depth" else f"{lower}@trade"


def ccxt_options(exchange_id: str) -> dict[str, Any]:
    """ccxt options that keep `load_markets` to one `exchangeInfo` call (no currencies, no
    margin), for the exchanges the daemon configures; empty for others."""
    dialect = DIALECTS.get(exchange_id)
    if dialect is not None:
        return {
            "fetchMarkets": {"types": ["spot"] if dialect == "spot" else ["linear"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "defaultType": "spot" if dialect == "spot" else "swap",
        }
    if exchange_id == "bybit":
        return {"defaultType": "swap", "fetchCurrencies": False}
    return {}


def ccxt_test_urls(dialect: Dialect, rest_base: str, ws_base: str) -> dict[str, Any]:
    """The dict for a ccxt.pro exchange's `urls["test"]` so it reaches `rest_base`/`ws_base`.

    `rest_base` is e.g. "http://127.0.0.1:8080" and `ws_base` "ws://127.0.0.1:8080" (no path).
    Every REST and websocket key ccxt 4.5 uses for the dialect is mapped; a key left out (sapi,
    dapi, ...) makes ccxt raise instead of reaching mainnet. ccxt appends the stream index to
    the websocket URLs (`/ws/0`) and, for USD-M, rewrites `.../ws` into `.../public/ws`,
    `.../market/ws` and `.../private/ws?listenKey=...`.
    """
    rest = rest_base.rstrip("/")
    ws = ws_base.rstrip("/")
    if dialect == "spot":
        return {
            "public": f"{rest}/api/v3",
            "private": f"{rest}/api/v3",
            "v1": f"{rest}/api/v1",
            "ws": {
                "spot": f"{ws}/ws",
                "margin": f"{ws}/ws",
                "ws-api": {"spot": f"{ws}/ws-api/v3"},
            },
        }
    if dialect == "usdm":
        return {
            "fapiPublic": f"{rest}/fapi/v1",
            "fapiPublicV2": f"{rest}/fapi/v2",
            "fapiPublicV3": f"{rest}/fapi/v3",
            "fapiPrivate": f"{rest}/fapi/v1",
            "fapiPrivateV2": f"{rest}/fapi/v2",
            "fapiPrivateV3": f"{rest}/fapi/v3",
            "fapiData": f"{rest}/futures/data",
            "ws": {
                "linear": f"{ws}/ws",
                "ws-api": {"linear": f"{ws}/ws-fapi/v1"},
            },
        }
    raise ValueError(f"unknown dialect {dialect!r}: expected spot or usdm")


def recorded_instrument(
    dialect: Dialect,
    symbol: str,
    venue: str,
    *,
    maker_fee_rate: float = 0.0,
    taker_fee_rate: float = 0.0,
) -> Instrument:
    """The instrument of a recorded USDT market (`symbol` like "btcusdt"), with the filters
    Binance applied to BTC and ETH when the captures were made."""
    sym = symbol.upper()
    base = sym.removesuffix("USDT")
    if dialect == "spot":
        lot = 0.00001 if base == "BTC" else 0.0001
        return Instrument(
            venue=venue,
            symbol=f"{base}/USDT",
            exchange_symbol=sym,
            kind=InstrumentKind.SPOT,
            base=base,
            quote="USDT",
            tick_size=0.01,
            lot_size=lot,
            min_notional_quote=5.0,
            maker_fee_rate=maker_fee_rate,
            taker_fee_rate=taker_fee_rate,
        )
    return Instrument(
        venue=venue,
        symbol=f"{base}/USDT:USDT",
        exchange_symbol=sym,
        kind=InstrumentKind.PERPETUAL,
        base=base,
        quote="USDT",
        tick_size=0.1 if base == "BTC" else 0.01,
        lot_size=0.001,
        min_notional_quote=100.0 if base == "BTC" else 20.0,
        maker_fee_rate=maker_fee_rate,
        taker_fee_rate=taker_fee_rate,
    )
