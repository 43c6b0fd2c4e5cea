"""The venue's symbol filters, checked before an order is sent, and read from ccxt's markets."""

from __future__ import annotations

from dataclasses import replace

from mm_daemon.core.filters import check_filters
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.types import OrderRequest, OrderType, Side
from mm_daemon.venues.exchanges import build_instrument

SPOT = replace(
    BTC_USDT_SPOT,
    min_price_ticks=1,
    max_price_ticks=100_000_000,  # 1,000,000 USDT
    max_size_lots=900_000_000,  # 9,000 BTC
    max_notional_quote=9_000_000.0,
    percent_price=(5.0, 0.2, 5.0, 0.2),
    max_num_orders=200,
)
PERP = replace(BTC_USDT_PERP, percent_price=(1.05, 0.0, 0.0, 0.95), max_num_orders=200)
FAIR = 6_000_000.0  # 60,000 USDT in spot ticks


def order(price_ticks: int, size_lots: int, side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest("sim-spot", "BTC/USDT", "c1", side, price_ticks, size_lots)


def test_an_order_within_every_filter_passes() -> None:
    assert check_filters(SPOT, order(5_999_000, 1_000), FAIR) is None


def test_price_above_the_max_price_breaks_price_filter() -> None:
    assert check_filters(SPOT, order(100_000_001, 1), FAIR * 20) == "PRICE_FILTER"


def test_size_above_the_max_quantity_breaks_lot_size() -> None:
    assert check_filters(SPOT, order(1, 900_000_001), 0.0) == "LOT_SIZE"


def test_size_below_the_minimum_breaks_lot_size() -> None:
    inst = replace(SPOT, min_size_lots=10)
    assert check_filters(inst, order(5_999_000, 9), FAIR) == "LOT_SIZE"


def test_notional_below_the_minimum_breaks_notional_on_spot() -> None:
    # 0.00008 BTC at 60,000 is 4.8 USDT, below the 5 USDT minimum.
    assert check_filters(SPOT, order(5_999_000, 8), FAIR) == "NOTIONAL"


def test_notional_below_the_minimum_breaks_min_notional_on_usdm() -> None:
    request = OrderRequest("sim-perp", "BTC/USDT:USDT", "c1", Side.BUY, 599_990, 1)  # 60 USDT
    assert check_filters(PERP, request, 600_000.0) == "MIN_NOTIONAL"


def test_notional_above_the_maximum_breaks_notional() -> None:
    inst = replace(SPOT, max_notional_quote=1_000.0)
    assert check_filters(inst, order(5_999_000, 2_000), FAIR) == "NOTIONAL"


def test_buy_far_above_the_reference_breaks_percent_price_by_side() -> None:
    assert check_filters(SPOT, order(int(FAIR * 5) + 1, 100), FAIR) == "PERCENT_PRICE_BY_SIDE"


def test_sell_far_below_the_reference_breaks_percent_price_by_side() -> None:
    request = order(int(FAIR * 0.2) - 1, 1_000, Side.SELL)
    assert check_filters(SPOT, request, FAIR) == "PERCENT_PRICE_BY_SIDE"


def test_usdm_buy_above_mark_times_multiplier_up_breaks_percent_price() -> None:
    request = OrderRequest("sim-perp", "BTC/USDT:USDT", "c1", Side.BUY, 630_001, 10)
    assert check_filters(PERP, request, 600_000.0) == "PERCENT_PRICE"


def test_one_order_more_than_max_num_orders_breaks_it() -> None:
    assert check_filters(SPOT, order(5_999_000, 1_000), FAIR, open_orders=200) == "MAX_NUM_ORDERS"


def test_market_order_notional_uses_the_reference_price() -> None:
    request = replace(order(0, 8), order_type=OrderType.MARKET)
    assert check_filters(SPOT, request, FAIR) == "NOTIONAL"


def test_filters_are_read_from_the_exchange_info_ccxt_keeps() -> None:
    market = {
        "symbol": "BTC/USDT",
        "id": "BTCUSDT",
        "spot": True,
        "base": "BTC",
        "quote": "USDT",
        "precision": {"price": 0.01, "amount": 0.00001},
        "limits": {"amount": {"min": 0.00001}, "cost": {"min": 5.0}},
        "info": {
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01000000",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.01000000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001",
                    "maxQty": "9000",
                    "stepSize": "0.00001",
                },
                {"filterType": "NOTIONAL", "minNotional": "5", "maxNotional": "9000000"},
                {
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": "5",
                    "bidMultiplierDown": "0.2",
                    "askMultiplierUp": "5",
                    "askMultiplierDown": "0.2",
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ]
        },
    }
    inst = build_instrument("sim-spot", market)
    assert (
        inst.min_price_ticks,
        inst.max_price_ticks,
        inst.max_size_lots,
        inst.max_notional_quote,
        inst.percent_price,
        inst.max_num_orders,
    ) == (1, 100_000_000, 900_000_000, 9_000_000.0, (5.0, 0.2, 5.0, 0.2), 200)
