"""The symbol filters a simulated venue publishes in `exchangeInfo`, enforced on every new order
with Binance's error codes.

The rules (spot `filters.md` and `errors.md`; USD-M "Filters" and "Error Codes"):

- PRICE_FILTER: `minPrice` <= price <= `maxPrice`, on the tick (the tick is checked where the
  price is parsed). Spot: -1013 "Filter failure: PRICE_FILTER"; USD-M: -4013 "Price less than
  min price." / -4002 "Price greater than max price.".
- LOT_SIZE: `minQty` <= quantity <= `maxQty`. Spot: -1013 "Filter failure: LOT_SIZE"; USD-M:
  -4004 "Quantity less than min quantity." / -4005 "Quantity greater than max quantity.".
- Spot NOTIONAL: `minNotional` <= price x quantity <= `maxNotional` (a MARKET order takes the
  average price and only the minimum): -1013 "Filter failure: NOTIONAL". USD-M MIN_NOTIONAL:
  -4164 "Order's notional must be no smaller than %s (unless you choose reduce only)".
- Spot PERCENT_PRICE_BY_SIDE: a buy within `bidMultiplierDown..bidMultiplierUp` times the
  weighted average price of the last `avgPriceMins` minutes, a sell within the ask multipliers:
  -1013 "Filter failure: PERCENT_PRICE_BY_SIDE". USD-M PERCENT_PRICE, around the mark price: a
  buy at most `multiplierUp` times it (-4016 "Price is higher than mark price multiplier cap."),
  a sell at least `multiplierDown` times it (-4024 "Price is lower than mark price multiplier
  floor.").
- MAX_NUM_ORDERS: open orders of the account on the symbol. Spot: -2010 "Filter failure:
  MAX_NUM_ORDERS" (the matching engine's refusal); USD-M: -2025 "Reach max open order limit.".

The limits are read from the venue's own `exchangeInfo`, so what it publishes is what it
enforces. The simulator's own market flow does not pass through here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mm_daemon.core.types import OrderType, Side
from mm_daemon.sim.binance.common import BinanceError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mm_daemon.sim.matching import PublicTrade
    from mm_daemon.sim.venue import SimVenue, VenueSymbol

__all__ = ["SymbolRules", "VenueFilters"]

_MINUTE_NS = 60_000_000_000


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """One symbol's published filters, in its ticks and lots (0 leaves a bound out)."""

    min_price_ticks: int = 0
    max_price_ticks: int = 0
    min_lots: int = 0
    max_lots: int = 0
    min_notional: float = 0.0
    max_notional: float = 0.0
    bid_up: float = 0.0
    bid_down: float = 0.0
    ask_up: float = 0.0
    ask_down: float = 0.0
    average_minutes: int = 0
    max_num_orders: int = 0


def _rules(sym: VenueSymbol, filters: list[Mapping[str, Any]], *, spot: bool) -> SymbolRules:
    by_type = {f.get("filterType"): f for f in filters}
    fmt = sym.fmt
    price = by_type.get("PRICE_FILTER", {})
    lots = by_type.get("LOT_SIZE", {})
    orders = by_type.get("MAX_NUM_ORDERS", {})
    common: dict[str, Any] = {
        "min_price_ticks": fmt.parse_px(str(price.get("minPrice", "0"))) or 0,
        "max_price_ticks": fmt.parse_px(str(price.get("maxPrice", "0"))) or 0,
        "min_lots": fmt.parse_qty(str(lots.get("minQty", "0"))) or 0,
        "max_lots": fmt.parse_qty(str(lots.get("maxQty", "0"))) or 0,
        "max_num_orders": int(orders.get("maxNumOrders", orders.get("limit", 0))),
    }
    if spot:
        notional = by_type.get("NOTIONAL", {})
        side = by_type.get("PERCENT_PRICE_BY_SIDE", {})
        return SymbolRules(
            **common,
            min_notional=float(notional.get("minNotional", 0)),
            max_notional=float(notional.get("maxNotional", 0)),
            bid_up=float(side.get("bidMultiplierUp", 0)),
            bid_down=float(side.get("bidMultiplierDown", 0)),
            ask_up=float(side.get("askMultiplierUp", 0)),
            ask_down=float(side.get("askMultiplierDown", 0)),
            average_minutes=int(side.get("avgPriceMins", 0)),
        )
    percent = by_type.get("PERCENT_PRICE", {})
    return SymbolRules(
        **common,
        min_notional=float(by_type.get("MIN_NOTIONAL", {}).get("notional", 0)),
        bid_up=float(percent.get("multiplierUp", 0)),
        ask_down=float(percent.get("multiplierDown", 0)),
    )


class _AveragePrice:
    """Trades of the last minutes in one-minute buckets: the weighted average price."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: deque[list[float]] = deque()  # [minute, price x lots, lots]

    def add(self, price_ticks: int, lots: int, now_ns: int) -> None:
        minute = now_ns // _MINUTE_NS
        if self._buckets and self._buckets[-1][0] == minute:
            bucket = self._buckets[-1]
            bucket[1] += price_ticks * lots
            bucket[2] += lots
        else:
            self._buckets.append([minute, float(price_ticks * lots), float(lots)])
            while len(self._buckets) > 60:
                self._buckets.popleft()

    def average(self, minutes: int, now_ns: int) -> float | None:
        first = now_ns // _MINUTE_NS - minutes
        value = lots = 0.0
        for minute, pq, q in self._buckets:
            if minute > first:
                value += pq
                lots += q
        return value / lots if lots else None


class VenueFilters:
    """The filters of a venue's symbols, and the trade prices the spot average needs."""

    def __init__(self) -> None:
        self._rules: dict[str, SymbolRules] = {}
        self._averages: dict[str, _AveragePrice] = {}

    def on_trades(self, sym: VenueSymbol, trades: list[PublicTrade], now_ns: int) -> None:
        average = self._averages.get(sym.instrument.exchange_symbol)
        if average is None:
            average = self._averages[sym.instrument.exchange_symbol] = _AveragePrice()
        for trade in trades:
            average.add(trade.price_ticks, trade.size_lots, now_ns)

    def rules(self, venue: SimVenue, sym: VenueSymbol) -> SymbolRules:
        name = sym.instrument.exchange_symbol
        rules = self._rules.get(name)
        if rules is None:
            rules = self._rules[name] = _rules(
                sym, _published_filters(venue, name), spot=venue.is_spot
            )
        return rules

    def check(
        self,
        venue: SimVenue,
        sym: VenueSymbol,
        api_key: str,
        *,
        side: Side,
        order_type: OrderType,
        price_ticks: int,
        size_lots: int,
        reduce_only: bool,
        now_ns: int,
        replacing: bool = False,
    ) -> None:
        """Raise the venue's refusal of a new order that breaks a filter. `replacing`: the
        order takes the place of one of the account's open orders (a cancel-replace)."""
        rules = self.rules(venue, sym)
        spot = venue.is_spot
        priced = order_type is not OrderType.MARKET
        if priced:
            if rules.min_price_ticks and price_ticks < rules.min_price_ticks:
                raise _failure(spot, "PRICE_FILTER", -4013, "Price less than min price.")
            if rules.max_price_ticks and price_ticks > rules.max_price_ticks:
                raise _failure(spot, "PRICE_FILTER", -4002, "Price greater than max price.")
        if rules.min_lots and size_lots < rules.min_lots:
            raise _failure(spot, "LOT_SIZE", -4004, "Quantity less than min quantity.")
        if rules.max_lots and size_lots > rules.max_lots:
            raise _failure(spot, "LOT_SIZE", -4005, "Quantity greater than max quantity.")
        reference = self._reference(sym, rules, now_ns, spot=spot)
        inst = sym.instrument
        notional_ticks = price_ticks if priced else reference or 0.0
        notional = notional_ticks * inst.tick_size * inst.lots_to_base(size_lots)
        if notional and notional + 1e-9 < rules.min_notional and not (reduce_only and not spot):
            raise _failure(
                spot,
                "NOTIONAL",
                -4164,
                f"Order's notional must be no smaller than {rules.min_notional:g} (unless you "
                "choose reduce only)",
            )
        if spot and priced and rules.max_notional and notional > rules.max_notional:
            raise _failure(spot, "NOTIONAL", 0, "")
        if priced and reference:
            self._check_band(rules, side, price_ticks, reference, spot=spot)
        if rules.max_num_orders:
            open_now = len(sym.engine.open_orders(api_key)) - (1 if replacing else 0)
            if open_now + 1 > rules.max_num_orders:
                if spot:
                    raise BinanceError(-2010, "Filter failure: MAX_NUM_ORDERS")
                raise BinanceError(-2025, "Reach max open order limit.")

    def _reference(
        self, sym: VenueSymbol, rules: SymbolRules, now_ns: int, *, spot: bool
    ) -> float | None:
        """Spot: the weighted average price of the last minutes (the mid before any trade);
        USD-M: the mark price (the mid here)."""
        if spot and rules.average_minutes:
            average = self._averages.get(sym.instrument.exchange_symbol)
            price = average.average(rules.average_minutes, now_ns) if average else None
            if price is not None:
                return price
        bid, ask = sym.engine.best_bid(), sym.engine.best_ask()
        if bid and ask:
            return (bid[0] + ask[0]) / 2.0
        return None

    @staticmethod
    def _check_band(
        rules: SymbolRules, side: Side, price: int, reference: float, *, spot: bool
    ) -> None:
        up, down = (
            (rules.bid_up, rules.bid_down) if side is Side.BUY else (rules.ask_up, rules.ask_down)
        )
        if up and price > reference * up:
            raise _failure(
                spot,
                "PERCENT_PRICE_BY_SIDE",
                -4016,
                "Price is higher than mark price multiplier cap.",
            )
        if down and price < reference * down:
            raise _failure(
                spot,
                "PERCENT_PRICE_BY_SIDE",
                -4024,
                "Price is lower than mark price multiplier floor.",
            )


def _failure(spot: bool, name: str, usdm_code: int, usdm_msg: str) -> BinanceError:
    if spot:
        return BinanceError(-1013, f"Filter failure: {name}")
    return BinanceError(usdm_code, usdm_msg)


def _published_filters(venue: SimVenue, name: str) -> list[Mapping[str, Any]]:
    """The symbol's filters as the venue's `exchangeInfo` publishes them."""
    if venue.is_spot:
        from mm_daemon.sim.binance.spot import exchange_info  # noqa: PLC0415  spot imports this module
    else:
        from mm_daemon.sim.binance.usdm import exchange_info  # noqa: PLC0415  usdm imports this module
    for symbol in exchange_info(venue, 0)["symbols"]:
        if symbol["symbol"] == name:
            return list(symbol["filters"])
    return []
