"""The instruments the simulator lists by default, shaped like Binance's own BTC/USDT markets.

Spot BTCUSDT: tick 0.01, lot 0.00001, min notional 5; USD-M BTCUSDT perpetual: tick 0.1, lot
0.001, min notional 100. Fees are the simulator's defaults (spot maker 0, taker 4 bps; perp
maker 0, taker 2 bps); `dataclasses.replace` gives other venues or fees.
"""

from __future__ import annotations

from mm_daemon.core.types import Instrument, InstrumentKind

__all__ = ["BTC_USDT_PERP", "BTC_USDT_SPOT"]

BTC_USDT_SPOT = Instrument(
    venue="sim-spot",
    symbol="BTC/USDT",
    exchange_symbol="BTCUSDT",
    kind=InstrumentKind.SPOT,
    base="BTC",
    quote="USDT",
    tick_size=0.01,
    lot_size=0.00001,
    min_notional_quote=5.0,
    maker_fee_rate=0.0,
    taker_fee_rate=0.0004,
)

BTC_USDT_PERP = Instrument(
    venue="sim-perp",
    symbol="BTC/USDT:USDT",
    exchange_symbol="BTCUSDT",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    tick_size=0.1,
    lot_size=0.001,
    min_notional_quote=100.0,
    maker_fee_rate=0.0,
    taker_fee_rate=0.0002,
)
