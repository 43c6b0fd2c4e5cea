"""Specification of the simulator's matching engine (price-time priority, Binance semantics)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.types import InstrumentKind, Liquidity, OrderType, Side
from mm_daemon.sim.matching import (
    BACKGROUND_API_KEY,
    ERR_DUPLICATE_ORDER,
    ERR_INSUFFICIENT_BALANCE,
    ERR_LOT_SIZE,
    ERR_NOTIONAL,
    ERR_ORDER_NOT_EXIST,
    ERR_PRICE_FILTER,
    ERR_REDUCE_ONLY,
    ERR_UNKNOWN_ORDER,
    ERR_WOULD_MATCH,
    Accounts,
    ExecType,
    LevelChange,
    MatchingEngine,
    OrderView,
    SimOrderStatus,
    parse_price_ticks,
    parse_size_lots,
)

BG = BACKGROUND_API_KEY
SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP
PX = 6_000_000  # 60,000.00 in spot ticks
ONE_BTC = 100_000  # spot lots


def spot_engine(base: float = 1.0, quote: float = 100_000.0) -> MatchingEngine:
    return MatchingEngine(SPOT, Accounts(InstrumentKind.SPOT, {"BTC": base, "USDT": quote}))


def perp_engine(margin: float = 10_000.0) -> MatchingEngine:
    return MatchingEngine(PERP, Accounts(InstrumentKind.PERPETUAL, {"USDT": margin}, leverage=10))


def test_resting_limit_order_creates_level_and_advances_update_id() -> None:
    eng = spot_engine()
    before = eng.update_id
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, 1000, 1, price_ticks=PX)
    assert res.ok
    assert res.update_id == before + 1
    assert res.level_changes == [LevelChange(Side.BUY, PX, 1000)]
    assert eng.best_bid() == (PX, 1000)
    assert res.order is not None
    assert res.order.status is SimOrderStatus.NEW
    assert [r.exec_type for r in res.reports] == [ExecType.NEW]


def test_crossing_order_fills_best_price_first_then_time_priority() -> None:
    eng = spot_engine()
    first = eng.submit(BG, Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX + 1)
    second = eng.submit(BG, Side.SELL, OrderType.LIMIT, 100, 2, price_ticks=PX + 1)
    better = eng.submit(BG, Side.SELL, OrderType.LIMIT, 100, 3, price_ticks=PX)
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, 250, 4, price_ticks=PX + 1)
    assert [(t.maker_order_id, t.price_ticks, t.size_lots) for t in res.trades] == [
        (better.order_id, PX, 100),
        (first.order_id, PX + 1, 100),
        (second.order_id, PX + 1, 50),
    ]
    assert all(t.aggressor is Side.BUY for t in res.trades)
    assert eng.best_ask() == (PX + 1, 50)
    assert eng.is_open(second.order_id)
    assert not eng.is_open(first.order_id)


def test_fully_filled_taker_reports_new_then_trades_ending_filled() -> None:
    eng = spot_engine()
    eng.submit(BG, Side.SELL, OrderType.LIMIT, 500, 1, price_ticks=PX)
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, 500, 2, price_ticks=PX)
    assert [(r.exec_type, r.status) for r in res.reports] == [
        (ExecType.NEW, SimOrderStatus.NEW),
        (ExecType.TRADE, SimOrderStatus.FILLED),
    ]
    trade = res.reports[1]
    assert trade.liquidity is Liquidity.TAKER
    assert trade.last_lots == 500
    assert trade.last_price_ticks == PX
    assert res.level_changes == [LevelChange(Side.SELL, PX, 0)]
    assert eng.best_ask() is None
    assert eng.open_orders("k") == []


def test_partial_fill_rests_remainder_at_limit() -> None:
    eng = spot_engine()
    eng.submit(BG, Side.SELL, OrderType.LIMIT, 300, 1, price_ticks=PX)
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, 1000, 2, price_ticks=PX)
    assert res.order is not None
    assert res.order.status is SimOrderStatus.PARTIALLY_FILLED
    assert res.order.executed_lots == 300
    assert eng.best_bid() == (PX, 700)
    assert eng.best_ask() is None
    assert set(res.level_changes) == {
        LevelChange(Side.SELL, PX, 0),
        LevelChange(Side.BUY, PX, 700),
    }


def test_resting_client_order_fills_as_maker_in_queue_order() -> None:
    eng = spot_engine()
    eng.submit(BG, Side.BUY, OrderType.LIMIT, 400, 1, price_ticks=PX)
    mine = eng.submit("k", Side.BUY, OrderType.LIMIT, 1000, 2, price_ticks=PX)
    res = eng.submit(BG, Side.SELL, OrderType.MARKET, 600, 3)
    assert [t.size_lots for t in res.trades] == [400, 200]
    assert res.trades[1].maker_order_id == mine.order_id
    assert res.trades[1].buyer_is_maker
    (report,) = res.reports
    assert report.liquidity is Liquidity.MAKER
    assert report.status is SimOrderStatus.PARTIALLY_FILLED
    assert report.cum_lots == 200
    assert res.accounts_changed == ["k"]


def test_limit_maker_that_would_cross_is_rejected_with_binance_error() -> None:
    eng = spot_engine()
    eng.submit(BG, Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX)
    before = eng.update_id
    res = eng.submit("k", Side.BUY, OrderType.LIMIT_MAKER, 100, 2, price_ticks=PX)
    assert res.error == ERR_WOULD_MATCH
    assert (res.error.code, res.error.msg) == (-2010, "Order would immediately match and take.")
    assert res.reports == []
    assert eng.update_id == before
    assert eng.open_orders("k") == []


def test_limit_maker_below_the_ask_rests() -> None:
    eng = spot_engine()
    eng.submit(BG, Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX)
    res = eng.submit("k", Side.BUY, OrderType.LIMIT_MAKER, 100, 2, price_ticks=PX - 1)
    assert res.ok
    assert eng.best_bid() == (PX - 1, 100)


def test_ioc_fills_what_it_can_and_expires_the_rest() -> None:
    eng = spot_engine()
    eng.submit(BG, Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX)
    eng.submit(BG, Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX + 5)
    res = eng.submit("k", Side.BUY, OrderType.IOC, 300, 2, price_ticks=PX + 1)
    assert [t.size_lots for t in res.trades] == [100]
    assert res.reports[-1].exec_type is ExecType.EXPIRED
    assert res.reports[-1].status is SimOrderStatus.EXPIRED
    assert res.reports[-1].cum_lots == 100
    assert eng.best_bid() is None
    assert eng.open_orders("k") == []


def test_market_order_sweeps_levels_and_expires_when_book_runs_out() -> None:
    eng = spot_engine()
    eng.submit(BG, Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX)
    eng.submit(BG, Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX - 10)
    res = eng.submit("k", Side.SELL, OrderType.MARKET, 500, 2)
    assert [(t.price_ticks, t.size_lots) for t in res.trades] == [(PX, 100), (PX - 10, 100)]
    assert res.order is not None
    assert res.order.status is SimOrderStatus.EXPIRED
    assert res.order.executed_lots == 200


def test_taker_fee_is_charged_in_quote_on_notional() -> None:
    eng = spot_engine(base=0.0, quote=100_000.0)
    eng.submit(BG, Side.SELL, OrderType.LIMIT, ONE_BTC, 1, price_ticks=PX)
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, ONE_BTC, 2, price_ticks=PX)
    fill = res.reports[-1]
    assert fill.fee == pytest.approx(60_000.0 * 0.0004)
    assert fill.fee_asset == "USDT"
    acct = eng.accounts.get("k")
    assert acct.balance("BTC").free == pytest.approx(1.0)
    assert acct.balance("USDT").free == pytest.approx(100_000.0 - 60_000.0 - 24.0)
    assert acct.balance("USDT").locked == pytest.approx(0.0)


def test_resting_buy_locks_quote_and_cancel_releases_it() -> None:
    eng = spot_engine(quote=100_000.0)
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, ONE_BTC, 1, price_ticks=PX)
    usdt = eng.accounts.get("k").balance("USDT")
    assert usdt.locked >= 60_000.0
    assert usdt.total == pytest.approx(100_000.0)
    eng.cancel("k", 2, order_id=res.order_id)
    assert usdt.locked == 0.0
    assert usdt.free == pytest.approx(100_000.0)


def test_resting_sell_locks_base() -> None:
    eng = spot_engine(base=1.0)
    eng.submit("k", Side.SELL, OrderType.LIMIT, ONE_BTC // 4, 1, price_ticks=PX)
    btc = eng.accounts.get("k").balance("BTC")
    assert btc.locked == pytest.approx(0.25)
    assert btc.free == pytest.approx(0.75)


def test_order_beyond_balance_is_rejected_insufficient() -> None:
    eng = spot_engine(base=0.1)
    res = eng.submit("k", Side.SELL, OrderType.LIMIT, ONE_BTC, 1, price_ticks=PX)
    assert res.error == ERR_INSUFFICIENT_BALANCE
    assert res.error.code == -2010


def test_background_account_is_never_balance_checked_or_reported() -> None:
    eng = spot_engine(base=0.0, quote=0.0)
    res = eng.submit(BG, Side.SELL, OrderType.LIMIT, 1000 * ONE_BTC, 1, price_ticks=PX)
    assert res.ok
    assert res.reports == []
    assert res.order is None


def test_filters_reject_bad_price_size_and_notional() -> None:
    eng = spot_engine()
    assert eng.submit("k", Side.BUY, OrderType.LIMIT, 1000, 1, price_ticks=0).error == (
        ERR_PRICE_FILTER
    )
    assert eng.submit("k", Side.BUY, OrderType.LIMIT, 0, 1, price_ticks=PX).error == ERR_LOT_SIZE
    # 0.00008 BTC at 60,000 is 4.8 USDT, under the 5 USDT minimum.
    assert eng.submit("k", Side.BUY, OrderType.LIMIT, 8, 1, price_ticks=PX).error == ERR_NOTIONAL
    assert eng.submit("k", Side.BUY, OrderType.LIMIT, 9, 1, price_ticks=PX).ok


def test_parse_helpers_refuse_off_grid_values() -> None:
    assert parse_price_ticks(SPOT, "60000.01") == 6_000_001
    assert parse_price_ticks(SPOT, "60000.001") == ERR_PRICE_FILTER
    assert parse_size_lots(SPOT, "0.00123") == 123
    assert parse_size_lots(SPOT, "0.000001") == ERR_LOT_SIZE
    assert parse_size_lots(SPOT, "abc") == ERR_LOT_SIZE


def test_cancel_unknown_order_is_2011_and_query_unknown_is_2013() -> None:
    eng = spot_engine()
    assert eng.cancel("k", 1, order_id=12345).error == ERR_UNKNOWN_ORDER
    assert eng.query("k", order_id=12345) == ERR_ORDER_NOT_EXIST


def test_cancel_by_client_id_removes_level_and_reports_canceled() -> None:
    eng = spot_engine()
    eng.submit("k", Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX, client_order_id="a1")
    res = eng.cancel("k", 2, client_order_id="a1")
    assert res.ok
    assert res.level_changes == [LevelChange(Side.SELL, PX, 0)]
    assert res.reports[0].exec_type is ExecType.CANCELED
    assert res.reports[0].client_order_id == "a1"
    view = eng.query("k", client_order_id="a1")
    assert isinstance(view, OrderView)
    assert view.status is SimOrderStatus.CANCELED


def test_another_accounts_order_cannot_be_cancelled() -> None:
    eng = spot_engine()
    res = eng.submit("k", Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX)
    assert eng.cancel("other", 2, order_id=res.order_id).error == ERR_UNKNOWN_ORDER


def test_duplicate_open_client_id_is_refused() -> None:
    eng = spot_engine()
    eng.submit("k", Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX, client_order_id="x")
    res = eng.submit("k", Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX, client_order_id="x")
    assert res.error == ERR_DUPLICATE_ORDER


def test_cancel_all_cancels_only_that_accounts_orders() -> None:
    eng = spot_engine()
    eng.submit("k", Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX)
    eng.submit("k", Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX - 5)
    eng.submit("j", Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX - 5)
    res = eng.cancel_all("k", 2)
    assert len(res.cancelled) == 2
    assert eng.open_orders("k") == []
    assert len(eng.open_orders("j")) == 1
    assert eng.best_bid() == (PX - 5, 100)


def test_cancelled_order_loses_its_place_and_is_skipped_by_matching() -> None:
    eng = spot_engine()
    a = eng.submit(BG, Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX)
    b = eng.submit(BG, Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX)
    eng.cancel(BG, 2, order_id=a.order_id)
    res = eng.submit(BG, Side.SELL, OrderType.MARKET, 100, 3)
    assert [t.maker_order_id for t in res.trades] == [b.order_id]


def test_cancel_replace_moves_the_order_to_the_new_price() -> None:
    eng = spot_engine()
    old = eng.submit("k", Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX)
    res = eng.cancel_replace(
        "k",
        2,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        size_lots=100,
        price_ticks=PX + 3,
        cancel_order_id=old.order_id,
    )
    assert res.ok
    assert eng.best_bid() == (PX + 3, 100)
    assert eng.level_size(Side.BUY, PX) == 0


def test_cancel_replace_stops_when_cancel_fails() -> None:
    eng = spot_engine()
    res = eng.cancel_replace(
        "k",
        1,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        size_lots=100,
        price_ticks=PX,
        cancel_order_id=999,
    )
    assert res.cancel.error == ERR_UNKNOWN_ORDER
    assert res.new is None
    assert eng.best_bid() is None


def test_self_trade_is_allowed() -> None:
    eng = spot_engine()
    eng.submit("k", Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX)
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, 100, 2, price_ticks=PX)
    assert len(res.trades) == 1
    liq = [r.liquidity for r in res.reports if r.exec_type is ExecType.TRADE]
    assert liq == [Liquidity.MAKER, Liquidity.TAKER]


def test_depth_lists_best_levels_first() -> None:
    eng = spot_engine()
    for i in range(5):
        eng.submit(BG, Side.BUY, OrderType.LIMIT, 10 + i, 1, price_ticks=PX - i)
        eng.submit(BG, Side.SELL, OrderType.LIMIT, 20 + i, 1, price_ticks=PX + 1 + i)
    bids, asks, update_id = eng.depth(3)
    assert bids == ((PX, 10), (PX - 1, 11), (PX - 2, 12))
    assert asks == ((PX + 1, 20), (PX + 2, 21), (PX + 3, 22))
    assert update_id == eng.update_id


def test_account_trades_list_fills_with_maker_flag() -> None:
    eng = spot_engine()
    eng.submit("k", Side.SELL, OrderType.LIMIT, 100, 1, price_ticks=PX)
    eng.submit(BG, Side.BUY, OrderType.MARKET, 100, 2)
    (trade,) = eng.account_trades("k")
    assert trade.is_maker
    assert trade.side is Side.SELL
    assert trade.quote_qty == pytest.approx(60.0)  # 0.001 BTC at 60,000


def test_perp_fills_open_then_close_position_with_realized_pnl() -> None:
    eng = perp_engine()
    eng.submit(BG, Side.SELL, OrderType.LIMIT, 1000, 1, price_ticks=600_000)
    eng.submit("k", Side.BUY, OrderType.MARKET, 100, 2)
    pos = eng.accounts.get("k").position("BTCUSDT")
    assert pos.size_lots == 100
    assert pos.entry_price == pytest.approx(60_000.0)
    eng.submit(BG, Side.BUY, OrderType.LIMIT, 1000, 3, price_ticks=601_000)
    res = eng.submit("k", Side.SELL, OrderType.MARKET, 100, 4)
    assert pos.size_lots == 0
    assert res.reports[-1].realized_pnl == pytest.approx(0.1 * 100.0)
    wallet = eng.accounts.get("k").wallet_balance("USDT")
    fees = 0.1 * 60_000.0 * 0.0002 + 0.1 * 60_100.0 * 0.0002
    assert wallet == pytest.approx(10_000.0 + 10.0 - fees)


def test_perp_reduce_only_that_would_increase_is_rejected() -> None:
    eng = perp_engine()
    eng.submit(BG, Side.SELL, OrderType.LIMIT, 1000, 1, price_ticks=600_000)
    res = eng.submit("k", Side.BUY, OrderType.MARKET, 100, 2, reduce_only=True)
    assert res.error == ERR_REDUCE_ONLY


def test_perp_order_beyond_margin_is_rejected() -> None:
    eng = perp_engine(margin=100.0)  # 10x: at most 1,000 USDT notional
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=600_000)
    assert res.error == ERR_INSUFFICIENT_BALANCE


def test_modify_changes_price_and_loses_queue_priority() -> None:
    eng = perp_engine()
    mine = eng.submit("k", Side.BUY, OrderType.LIMIT, 10, 1, price_ticks=599_000)
    other = eng.submit(BG, Side.BUY, OrderType.LIMIT, 10, 2, price_ticks=600_000)
    res = eng.modify("k", 3, order_id=mine.order_id, price_ticks=600_000, size_lots=20)
    assert res.ok
    assert res.reports[0].exec_type is ExecType.AMENDMENT
    assert eng.best_bid() == (600_000, 30)
    hit = eng.submit(BG, Side.SELL, OrderType.MARKET, 10, 4)
    assert hit.trades[0].maker_order_id == other.order_id


def test_order_modified_away_from_a_shared_level_no_longer_fills_there() -> None:
    eng = perp_engine()
    eng.submit(BG, Side.BUY, OrderType.LIMIT, 10, 1, price_ticks=600_000)
    mine = eng.submit("k", Side.BUY, OrderType.LIMIT, 10, 2, price_ticks=600_000)
    eng.modify("k", 3, order_id=mine.order_id, price_ticks=599_000, size_lots=10)
    hit = eng.submit(BG, Side.SELL, OrderType.MARKET, 15, 4)
    assert [(t.price_ticks, t.size_lots) for t in hit.trades] == [(600_000, 10), (599_000, 5)]


def test_order_modified_at_its_own_price_goes_behind_the_level() -> None:
    eng = perp_engine()
    mine = eng.submit("k", Side.BUY, OrderType.LIMIT, 10, 1, price_ticks=600_000)
    other = eng.submit(BG, Side.BUY, OrderType.LIMIT, 10, 2, price_ticks=600_000)
    eng.modify("k", 3, order_id=mine.order_id, price_ticks=600_000, size_lots=20)
    hit = eng.submit(BG, Side.SELL, OrderType.MARKET, 30, 4)
    assert [(t.maker_order_id, t.size_lots) for t in hit.trades] == [
        (other.order_id, 10),
        (mine.order_id, 20),
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["k", "j", BG]),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.sampled_from(list(OrderType)),
            st.integers(min_value=-5, max_value=5),
            st.integers(min_value=10, max_value=3000),
            st.booleans(),
        ),
        max_size=60,
    )
)
def test_spot_balances_change_by_exactly_the_fills_and_fees(
    ops: list[tuple[str, Side, OrderType, int, int, bool]],
) -> None:
    eng = spot_engine(base=0.5, quote=50_000.0)
    for i, (key, side, order_type, offset, size, cancel_first) in enumerate(ops):
        if cancel_first and key != BG:
            for view in eng.open_orders(key)[:1]:
                assert eng.cancel(key, i, order_id=view.order_id).ok
        eng.submit(key, side, order_type, size, i, price_ticks=PX + offset)
    for key in ("k", "j"):
        if eng.open_orders(key):
            eng.cancel_all(key, len(ops))
        acct = eng.accounts.get(key)
        base = 0.5
        quote = 50_000.0
        for t in eng.account_trades(key):
            sign = int(t.side)
            base += sign * t.size_lots * SPOT.lot_size
            quote -= sign * t.quote_qty + t.fee
        assert acct.balance("BTC").locked == pytest.approx(0.0, abs=1e-9)
        assert acct.balance("USDT").locked == pytest.approx(0.0, abs=1e-6)
        assert acct.balance("BTC").free == pytest.approx(base, abs=1e-9)
        assert acct.balance("USDT").free == pytest.approx(quote, abs=1e-6)
        assert acct.balance("BTC").free >= -1e-9


def test_modify_of_a_partly_filled_order_locks_only_what_is_left() -> None:
    eng = perp_engine(margin=1_000.0)
    mine = eng.submit("k", Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=600_000)
    eng.submit(BG, Side.SELL, OrderType.MARKET, 40, 2)
    usdt = eng.accounts.get("k").balance("USDT")
    res = eng.modify("k", 3, order_id=mine.order_id, price_ticks=600_000, size_lots=100)
    assert res.ok
    # 60 lots left open at 60,000 with 10x leverage: 0.06 BTC x 60,000 / 10.
    assert usdt.locked == pytest.approx(360.0)


def test_cancel_replace_allow_failure_places_the_new_order_anyway() -> None:
    eng = spot_engine()
    res = eng.cancel_replace(
        "k",
        1,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        size_lots=100,
        price_ticks=PX,
        cancel_order_id=999,
        allow_failure=True,
    )
    assert res.cancel.error == ERR_UNKNOWN_ORDER
    assert res.new is not None
    assert res.new.ok
    assert eng.best_bid() == (PX, 100)


def test_call_that_leaves_the_book_unchanged_keeps_the_update_id() -> None:
    eng = spot_engine()
    eng.submit(BG, Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX)
    before = eng.update_id
    res = eng.submit("k", Side.BUY, OrderType.IOC, 100, 2, price_ticks=PX + 1)
    assert res.ok
    assert res.trades == []
    assert res.level_changes == []
    assert eng.update_id == before


def test_halted_engine_refuses_new_orders() -> None:
    eng = spot_engine()
    eng.halted = True
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, 100, 1, price_ticks=PX)
    assert res.error is not None
    assert res.error.code == -2010


def test_account_trades_from_id_lists_later_fills_only() -> None:
    eng = spot_engine()
    for i in range(3):
        eng.submit("k", Side.SELL, OrderType.LIMIT, 100, i, price_ticks=PX)
        eng.submit(BG, Side.BUY, OrderType.MARKET, 100, i)
    trades = eng.account_trades("k")
    assert len(trades) == 3
    later = eng.account_trades("k", from_id=trades[1].trade_id)
    assert [t.trade_id for t in later] == [t.trade_id for t in trades[1:]]


def test_finished_orders_stay_queryable_up_to_the_configured_count() -> None:
    eng = MatchingEngine(
        SPOT, Accounts(InstrumentKind.SPOT, {"BTC": 1.0, "USDT": 1e6}), done_orders_kept=2
    )
    ids = []
    for i in range(3):
        res = eng.submit("k", Side.BUY, OrderType.LIMIT, 100, i, price_ticks=PX)
        eng.cancel("k", i, order_id=res.order_id)
        ids.append(res.order_id)
    assert eng.query("k", order_id=ids[0]) == ERR_ORDER_NOT_EXIST
    assert isinstance(eng.query("k", order_id=ids[2]), OrderView)


def _aggregate_open(eng: MatchingEngine, keys: tuple[str, ...]) -> dict[tuple[Side, int], int]:
    levels: dict[tuple[Side, int], int] = {}
    for key in keys:
        for view in eng.open_orders(key):
            k = (view.side, view.price_ticks)
            levels[k] = levels.get(k, 0) + view.orig_lots - view.executed_lots
    return levels


def _book_levels(eng: MatchingEngine) -> dict[tuple[Side, int], int]:
    bids, asks, _ = eng.depth(0)
    out = {(Side.BUY, p): s for p, s in bids}
    out.update({(Side.SELL, p): s for p, s in asks})
    return out


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.just("submit"),
                st.sampled_from(["k", "j"]),
                st.sampled_from([Side.BUY, Side.SELL]),
                st.sampled_from(list(OrderType)),
                st.integers(min_value=-6, max_value=6),
                st.integers(min_value=9, max_value=400),
            ),
            st.tuples(
                st.just("cancel"),
                st.sampled_from(["k", "j"]),
                st.just(Side.BUY),
                st.just(OrderType.LIMIT),
                st.integers(min_value=0, max_value=10),
                st.just(0),
            ),
        ),
        max_size=80,
    )
)
def test_level_changes_and_update_ids_describe_the_book_exactly(
    ops: list[tuple[str, str, Side, OrderType, int, int]],
) -> None:
    eng = spot_engine(base=1_000.0, quote=1e9)
    keys = ("k", "j")
    mirror: dict[tuple[Side, int], int] = {}
    for ts, (op, key, side, order_type, a, b) in enumerate(ops):
        before = eng.update_id
        if op == "submit":
            res = eng.submit(key, side, order_type, b, ts, price_ticks=PX + a)
        else:
            views = eng.open_orders(key)
            if not views:
                continue
            res = eng.cancel(key, ts, order_id=views[a % len(views)].order_id)
        # One update id per call that changed the book, none otherwise.
        assert eng.update_id == before + (1 if res.level_changes else 0)
        for change in res.level_changes:
            if change.size_lots:
                mirror[(change.side, change.price_ticks)] = change.size_lots
            else:
                mirror.pop((change.side, change.price_ticks), None)
        # Replaying the level changes gives the book; the book is the open orders.
        assert mirror == _book_levels(eng)
        assert mirror == _aggregate_open(eng, keys)
        bid, ask = eng.best_bid(), eng.best_ask()
        assert bid is None or ask is None or bid[0] < ask[0]
