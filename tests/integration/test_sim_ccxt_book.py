"""ccxt.pro's order books and trades over the simulator's streams, both dialects."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ccxt.pro as ccxtpro
import pytest

SPOT = "sim-spot"
PERP = "sim-perp"
SYMBOLS = {SPOT: "BTC/USDT", PERP: "BTC/USDT:USDT"}
UPDATES = 2000
DEPTH = 100


@pytest.fixture
def market_speed() -> float:
    return 3.0


async def _compare_books(
    exchange: Any,
    venue: str,
    history: Any,
    to_levels: Callable[..., Any],
    *,
    updates: int,
    deadline_s: float = 30.0,
) -> tuple[int, int]:
    """Watch the book until it has covered `updates` update ids, comparing with the simulator's
    own book at ccxt's nonce each time; returns (update ids covered, comparisons)."""
    symbol = SYMBOLS[venue]
    market = exchange.market(symbol)
    tick = market["precision"]["price"]
    lot = market["precision"]["amount"]
    first: int | None = None
    nonce = 0
    comparisons = 0
    deadline = time.monotonic() + deadline_s
    while first is None or nonce - first < updates:
        assert time.monotonic() < deadline, f"covered only {nonce - (first or nonce)} updates"
        book = await exchange.watch_order_book(symbol)
        nonce = book["nonce"]
        if first is None:
            first = nonce
        bids, asks = history.books[nonce]
        assert to_levels(book["bids"], tick, lot, DEPTH) == bids
        assert to_levels(book["asks"], tick, lot, DEPTH) == asks
        comparisons += 1
    assert first is not None
    return nonce - first, comparisons


async def _watch_until_error(exchange: Any, symbol: str, calls: int = 1000) -> None:
    for _ in range(calls):
        await exchange.watch_order_book(symbol)


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_watch_order_book_equals_the_simulator_book_at_the_same_update_id(
    venue: str, make_exchange: Any, book_history: Any, to_levels: Any
) -> None:
    history = book_history(venue, DEPTH)
    exchange = make_exchange(venue)
    await exchange.load_markets()
    covered, comparisons = await _compare_books(
        exchange, venue, history, to_levels, updates=UPDATES
    )
    assert covered >= UPDATES
    assert comparisons >= 5
    history.check_engine()


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_an_injected_gap_makes_ccxt_resync_to_the_simulator_book(
    venue: str, make_exchange: Any, book_history: Any, to_levels: Any, admin: Any
) -> None:
    history = book_history(venue, DEPTH)
    exchange = make_exchange(venue)
    await exchange.load_markets()
    await _compare_books(exchange, venue, history, to_levels, updates=100)
    await admin.fault(venue, "gap", count=1)
    with pytest.raises(ccxtpro.ChecksumError):
        await _watch_until_error(exchange, SYMBOLS[venue])
    covered, _ = await _compare_books(exchange, venue, history, to_levels, updates=200)
    assert covered >= 200


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_a_disconnect_is_survived_by_watching_again(  # noqa: PLR0917  pytest fixtures
    venue: str, make_exchange: Any, book_history: Any, to_levels: Any, admin: Any, sim: Any
) -> None:
    history = book_history(venue, DEPTH)
    exchange = make_exchange(venue)
    await exchange.load_markets()
    await _compare_books(exchange, venue, history, to_levels, updates=100)
    before = set(sim.venues[venue].streams.connections)
    assert before
    await admin.fault(venue, "disconnect")
    assert not sim.venues[venue].streams.connections & before
    # A call pending at the drop fails with NetworkError; the next one dials again.
    for _ in range(3):
        try:
            covered, _ = await _compare_books(exchange, venue, history, to_levels, updates=200)
            break
        except ccxtpro.NetworkError:
            continue
    assert covered >= 200
    assert sim.venues[venue].streams.connections - before


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_watch_trades_delivers_every_trade_in_order(
    venue: str, make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(venue)
    await exchange.load_markets()
    engine = sim.venues[venue].symbols["BTCUSDT"].engine
    ids: list[int] = []
    deadline = time.monotonic() + 30
    while len(ids) < 100:
        assert time.monotonic() < deadline
        trades = await exchange.watch_trades(SYMBOLS[venue])
        ids.extend(int(t["id"]) for t in trades)
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert engine.last_trade_id >= ids[-1]
