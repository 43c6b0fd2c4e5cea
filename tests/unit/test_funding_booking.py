"""Funding booked by an asset book: journaled before it counts, counted once, put back by a
restart; paper settlements from mark price events routed by the portfolio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import orjson

from mm_daemon.core.funding import FundingSettler
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.types import FundingFee, MarkPrice, Side
from mm_daemon.engine.asset import AssetBook
from mm_daemon.engine.journal import Journal
from mm_daemon.engine.metrics import Metrics
from mm_daemon.engine.portfolio import Portfolio
from mm_daemon.venues.binance_mark_price import MarkPriceReader
from tests.support import sample
from tests.unit.test_pnl import make_fill

SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP
S = 1_000_000_000
FUNDING_TIME = 1_700_006_400 * S


def fee(amount: float, funding_time_ns: int = FUNDING_TIME, tran_id: str = "9") -> FundingFee:
    return FundingFee(PERP.venue, PERP.symbol, funding_time_ns, amount, "USDT", tran_id)


def open_journal(path: Path) -> Journal:
    journal = Journal.open(path)
    journal.register_instrument(SPOT)
    journal.register_instrument(PERP)
    journal.start_run(mode="live", instance_id="test", config_yaml="mode: live\n", ts_ns=S)
    return journal


def asset_book(journal: Journal | None = None, metrics: Metrics | None = None) -> AssetBook:
    ledger = Ledger(SPOT)
    ledger.add_instrument(PERP)
    return AssetBook("BTC", ledger, metrics or Metrics(), journal=journal)


def test_a_funding_payment_is_journaled_and_booked(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.journal")
    book = asset_book(journal)
    assert book.book_funding(fee(-0.12345678))
    assert book.ledger.pnl().funding == Fraction("-0.12345678")
    (payment,) = journal.recover().market("BTC").funding
    assert (payment.funding_time_ns, payment.amount) == (FUNDING_TIME, -0.12345678)
    journal.close()


def test_the_same_settlement_read_twice_counts_once(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.journal")
    book = asset_book(journal)
    book.book_funding(fee(-1.5))
    assert not book.book_funding(fee(-1.5))
    assert book.ledger.pnl().funding == Fraction(-3, 2)
    journal.close()


def test_each_settlement_is_counted_in_the_funding_payments_metric(tmp_path: Path) -> None:
    metrics = Metrics()
    journal = open_journal(tmp_path / "j.journal")
    book = asset_book(journal, metrics)
    book.book_funding(fee(-1.5))
    book.book_funding(fee(-1.5))
    book.book_funding(fee(0.5, FUNDING_TIME + 8 * 3600 * S, "10"))
    total = sample(
        metrics.registry, "mm_funding_payments_total", venue=PERP.venue, symbol=PERP.symbol
    )
    assert total == 2
    journal.close()


def test_a_restart_books_again_the_funding_journaled_after_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    journal = open_journal(path)
    book = asset_book(journal)
    book.book_funding(fee(-1.0))
    book.checkpoint(2 * S)
    book.book_funding(fee(0.25, FUNDING_TIME + 8 * 3600 * S, "10"))
    journal.close()
    reopened = open_journal(path)
    recovery = reopened.recover()
    restarted = asset_book()
    recovery.market("BTC").restore_ledger(restarted.ledger)
    assert restarted.ledger.pnl().funding == Fraction(-3, 4)
    assert recovery.last_funding_ns[(PERP.venue, PERP.symbol)] == FUNDING_TIME + 8 * 3600 * S
    reopened.close()


def mark(ts_s: int, price: float, rate: float, next_funding_s: int) -> MarkPrice:
    return MarkPrice(
        PERP.venue, PERP.symbol, ts_s * S, ts_s * S, price, price, rate, next_funding_s * S
    )


def test_paper_settles_funding_on_the_perpetual_position_from_mark_price_events() -> None:
    book = asset_book()
    book.add_funding_settler(FundingSettler(PERP.venue, PERP.symbol, "USDT"))
    book.ledger.on_fill(make_fill(PERP, Side.SELL, 600_000, 500, client_order_id="hdg-1"))
    portfolio = Portfolio([book], book.metrics)
    portfolio.on_market_event(mark(99, 60_000.0, 0.0001, 100))
    portfolio.on_market_event(mark(100, 61_000.0, 0.0002, 108))
    # Short 0.5 BTC at a positive rate receives 0.5 x 60,000 x 0.0001.
    assert book.ledger.pnl().funding == 3


def test_a_mark_price_of_an_instrument_no_asset_holds_is_ignored() -> None:
    book = asset_book()
    portfolio = Portfolio([book], book.metrics)
    other = MarkPrice("elsewhere", "X/USDT:USDT", S, S, 1.0, 1.0, 0.01, 2 * S)
    portfolio.on_market_event(other)
    assert book.ledger.pnl().funding == 0
    assert (
        sample(book.metrics.registry, "mm_event_errors_total", default=0.0, venue="elsewhere") == 0
    )


def test_a_mark_price_frame_becomes_a_mark_price_event() -> None:
    events: list[object] = []
    reader = MarkPriceReader(PERP.venue, "ws://unused", [PERP], events.append)
    frame = {
        "e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000",
        "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167", "T": 1562306400000,
    }  # fmt: skip
    reader.on_message(orjson.dumps(frame), 7)
    assert events == [
        MarkPrice(
            PERP.venue, PERP.symbol, 1562305380000 * 10**6, 7, 11794.15, 11784.62659091,
            0.00038167, 1562306400000 * 10**6,
        )
    ]  # fmt: skip


def test_a_malformed_mark_price_frame_is_counted_and_skipped() -> None:
    events: list[object] = []
    counted: list[int] = []
    reader = MarkPriceReader(
        PERP.venue, "ws://unused", [PERP], events.append, on_malformed=lambda: counted.append(1)
    )
    reader.on_message(b'{"e":"markPriceUpdate","s":"BTCUSDT","p":"x"}', 7)
    reader.on_message(b"not json", 8)
    assert (events, len(counted), reader.malformed) == ([], 2, 2)
