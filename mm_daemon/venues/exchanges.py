"""ccxt.pro exchanges for every endpoint, and instruments from ccxt's markets.

`create_exchange(venue)` builds a ccxt.pro exchange for `endpoint: sim | testnet | mainnet |
<url>`. The embedded simulator and a standalone `mm-daemon sim` URL are reached exactly like a
testnet: loopback URLs in `urls["test"]` and `set_sandbox_mode(True)` (the URL map is
`mm_daemon.binance.markets.ccxt_test_urls`), so a call to an API that is not mapped raises
instead of reaching mainnet. Testnet means ccxt's own sandbox URLs (Binance spot:
testnet.binance.vision; Bybit: its testnet); for Binance USD-M, whose testnet ccxt refuses in
sandbox mode, it means Binance demo trading (`enable_demo_trading(True)`,
demo-fapi.binance.com).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from mm_daemon.binance.markets import (
    CCXT_IDS,
    DIALECTS,
    Dialect,
    ccxt_options,
    ccxt_test_urls,
)
from mm_daemon.core.types import Instrument, InstrumentKind

if TYPE_CHECKING:
    from mm_daemon.config import VenueConfig

__all__ = [
    "VenueError",
    "build_instrument",
    "create_exchange",
    "http_to_ws",
    "make_ccxt_exchange",
]


class VenueError(Exception):
    """A venue problem the user must fix (unknown symbol, unsupported exchange/endpoint)."""


def http_to_ws(url: str) -> str:
    """http://host:port -> ws://host:port (https -> wss)."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    raise VenueError(f"endpoint {url!r}: expected an http:// or https:// URL")


def make_ccxt_exchange(
    dialect: Dialect,
    rest_base: str,
    ws_base: str,
    api_key: str | None = None,
    secret: str | None = None,
    *,
    rate_limit: bool = False,
) -> Any:
    """A ccxt.pro `binance` (spot) or `binanceusdm` exchange pointed at the given server.

    `rate_limit=False` turns ccxt's own throttle off (only for a simulator); the caller closes
    the exchange with `await exchange.close()`.
    """
    import ccxt.pro as ccxtpro  # noqa: PLC0415  heavy import (~0.6 s), only when a venue is made

    ccxt_id = CCXT_IDS.get(dialect)
    if ccxt_id is None:
        raise ValueError(f"unknown dialect {dialect!r}: expected spot or usdm")
    params: dict[str, Any] = {"enableRateLimit": rate_limit, "options": ccxt_options(ccxt_id)}
    if api_key is not None:
        params["apiKey"] = api_key
    if secret is not None:
        params["secret"] = secret
    exchange = getattr(ccxtpro, ccxt_id)(params)
    exchange.urls["test"] = ccxt_test_urls(dialect, rest_base, ws_base)
    exchange.set_sandbox_mode(True)
    return exchange


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def create_exchange(
    venue: VenueConfig, *, sim_base_url: str | None = None, rate_limit: bool | None = None
) -> Any:
    """A ccxt.pro exchange for `venue` (markets not loaded yet; the caller closes it).

    `sim_base_url` (e.g. "http://127.0.0.1:8101") is where the embedded simulator serves this
    venue; it is required for `endpoint: sim`. ccxt's rate limiter stays on except against a
    simulator (override with `rate_limit`).
    """
    endpoint = venue.endpoint
    key, secret = _secret(venue.api_key), _secret(venue.api_secret)
    if endpoint == "sim" or endpoint.startswith(("http://", "https://")):
        base = sim_base_url if endpoint == "sim" else endpoint
        if base is None:
            raise VenueError(f"venue {venue.name}: endpoint sim needs the simulator's URL")
        dialect = DIALECTS.get(venue.exchange)
        if dialect is None:
            raise VenueError(
                f"venue {venue.name}: the simulator speaks binance and binanceusdm, "
                f"not {venue.exchange!r}"
            )
        return make_ccxt_exchange(
            dialect, base, http_to_ws(base), key, secret, rate_limit=bool(rate_limit)
        )
    import ccxt.pro as ccxtpro  # noqa: PLC0415  heavy import (~0.6 s), only when a venue is made

    cls = getattr(ccxtpro, venue.exchange, None)
    if cls is None:
        raise VenueError(f"venue {venue.name}: ccxt.pro has no exchange {venue.exchange!r}")
    params: dict[str, Any] = {
        "enableRateLimit": True if rate_limit is None else rate_limit,
        "options": ccxt_options(venue.exchange),
    }
    if key is not None:
        params["apiKey"] = key
    if secret is not None:
        params["secret"] = secret
    exchange = cls(params)
    if endpoint == "testnet":
        if venue.exchange == "binanceusdm":
            # ccxt refuses Binance's futures testnet in sandbox mode; demo trading replaces it.
            exchange.enable_demo_trading(True)  # noqa: FBT003  ccxt's API takes a positional flag
        else:
            exchange.set_sandbox_mode(True)
    return exchange


def _float(value: Any, default: float) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return result if math.isfinite(result) else default


def build_instrument(
    venue_name: str,
    market: Mapping[str, Any],
    *,
    fees_bps: tuple[float, float] | None = None,
) -> Instrument:
    """An Instrument from a ccxt market (ccxt's TICK_SIZE precision: precision = step size)."""
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    tick = _float(precision.get("price"), 0.0)
    lot = _float(precision.get("amount"), 0.0)
    if tick <= 0 or lot <= 0:
        raise VenueError(
            f"venue {venue_name}: market {market.get('symbol')} has no tick/lot size in ccxt's data"
        )
    min_amount = _float((limits.get("amount") or {}).get("min"), 0.0)
    min_cost = _float((limits.get("cost") or {}).get("min"), 0.0)
    if fees_bps is None:
        maker = _float(market.get("maker"), 0.001)
        taker = _float(market.get("taker"), 0.001)
    else:
        maker, taker = fees_bps[0] / 1e4, fees_bps[1] / 1e4
    is_spot = bool(market.get("spot"))
    filters = _filters(market, tick, lot)
    return Instrument(
        venue=venue_name,
        symbol=str(market["symbol"]),
        exchange_symbol=str(market["id"]),
        kind=InstrumentKind.SPOT if is_spot else InstrumentKind.PERPETUAL,
        base=str(market.get("base", "")),
        quote=str(market.get("quote", "")),
        tick_size=tick,
        lot_size=lot,
        min_notional_quote=min_cost,
        min_size_lots=max(1, math.ceil(min_amount / lot - 1e-9)) if min_amount > 0 else 1,
        contract_size_base=_float(market.get("contractSize"), 1.0) if not is_spot else 1.0,
        maker_fee_rate=maker,
        taker_fee_rate=taker,
        **filters,
    )


def _steps(value: Any, step: float, *, up: bool) -> int:
    """How many whole `step`s `value` (a decimal text) is, exactly (0 for a bad value)."""
    try:
        ratio = Decimal(str(value)) / Decimal(repr(step))
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return 0
    if not ratio.is_finite() or ratio < 0:
        return 0
    return int(ratio.to_integral_value(ROUND_CEILING if up else ROUND_FLOOR))


def _filters(market: Mapping[str, Any], tick: float, lot: float) -> dict[str, Any]:
    """The Binance filters ccxt's market keeps in `info.filters` that the tick, lot and
    minimums do not cover, as `Instrument` fields (`core.filters` checks them)."""
    info = market.get("info")
    raw = info.get("filters") if isinstance(info, Mapping) else None
    if not isinstance(raw, list):
        return {}
    by_type = {f.get("filterType"): f for f in raw if isinstance(f, Mapping)}
    out: dict[str, Any] = {}
    price = by_type.get("PRICE_FILTER")
    if price is not None:
        out["min_price_ticks"] = _steps(price.get("minPrice"), tick, up=True)
        out["max_price_ticks"] = _steps(price.get("maxPrice"), tick, up=False)
    lot_size = by_type.get("LOT_SIZE")
    if lot_size is not None:
        out["max_size_lots"] = _steps(lot_size.get("maxQty"), lot, up=False)
    notional = by_type.get("NOTIONAL")
    if notional is not None:
        out["max_notional_quote"] = _float(notional.get("maxNotional"), 0.0)
    by_side = by_type.get("PERCENT_PRICE_BY_SIDE")
    percent = by_type.get("PERCENT_PRICE")
    if by_side is not None:
        out["percent_price"] = tuple(
            _float(by_side.get(key), 0.0)
            for key in (
                "bidMultiplierUp",
                "bidMultiplierDown",
                "askMultiplierUp",
                "askMultiplierDown",
            )
        )
    elif percent is not None and not market.get("spot"):
        # USD-M: a buy at most multiplierUp times the mark price, a sell at least multiplierDown.
        out["percent_price"] = (
            _float(percent.get("multiplierUp"), 0.0),
            0.0,
            0.0,
            _float(percent.get("multiplierDown"), 0.0),
        )
    orders = by_type.get("MAX_NUM_ORDERS")
    if orders is not None:
        out["max_num_orders"] = int(_float(orders.get("maxNumOrders", orders.get("limit")), 0.0))
    return out
