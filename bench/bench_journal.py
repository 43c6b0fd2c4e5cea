"""The journal: cost per fill and per snapshot, recovery time, and the book-update path.

Cases (each printed as a table, all written to bench/results/journal.json):
- fill: `Journal.record_fill`, a commit (to the WAL) of the fill and whatever was buffered,
  measured over the fills that build the recovery journal below; and with
  `fsync_each_commit` (the WAL fsynced before the call returns) over 2,000 fills;
- snapshot: `record_snapshot` on the caller's thread (a buffer append), and the writer's
  commit of one second of snapshots of 10 markets (what it commits each second);
- stdlib sqlite3 against aiosqlite: one single-row commit each, same pragmas, to the WAL
  (synchronous=NORMAL, the journal's) and fsynced (FULL);
- recovery of a journal of N fills (default 100,000, about 10 % hedge fills) plus one day of
  1 s snapshots of two markets: open (lock, read-only checks with SQLite's quick_check), read
  the recovery, and rebuild the ledger, with a checkpoint every 1,000 fills and with none
  (every fill booked again);
- the book-update path: a book delta applied and quoted (`MarketState.on_event` and
  `Quoter.quote`) at 2,500 events/s, open loop (latency from the event's due time, so a stall
  delays the events behind it; and each event's own processing time), with an order action
  journaled every 25th event (100/s, ten times spot's order budget) and 10 markets'
  snapshots each second: journal off / writer thread flushing every 0.25 s / writer thread
  busy (committing every millisecond) / the rejected design of committing on the loop every
  0.25 s. The loop sleeps between events, as an event loop does in its poll;
- engine tick-to-quote: the daemon's own engine (portfolio, market trader, order manager, asset
  book; one market hedged) with its journal hooks, journal off and on in alternate rounds: a
  book delta that moves fair value past the price tolerance, to the replace handed to the venue
  (each one journals a cancel and an order after the send), and every 20th event a fill
  (committed to the journal before it counts, then a requote).

Usage: .venv/bin/python bench/bench_journal.py [--fills 100000] [--runs 3] [--seconds 8]
       [--engine-only]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from mm_daemon.core.hedging import HedgeIntent
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.market_state import MarketState
from mm_daemon.core.quoting import MarketInputs, QuoteParams, Quoter
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from mm_daemon.engine.journal import Journal, Snapshot
from mm_daemon.log import configure_logging

RESULTS = Path(__file__).resolve().parent / "results" / "journal.json"
SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP
S = 1_000_000_000
EVENT_RATE = 2_500
ORDER_EVERY = 25  # an order action journaled every 25th event: 100/s, 10x spot's order budget
MARKETS = 10


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_us(samples_ns: list[int]) -> dict[str, float]:
    us = [v / 1_000 for v in samples_ns]
    return {
        "count": len(us),
        "p50_us": pct(us, 0.5),
        "p90_us": pct(us, 0.9),
        "p99_us": pct(us, 0.99),
        "p999_us": pct(us, 0.999),
        "max_us": max(us),
    }


def snapshot(market: str, ts_ns: int) -> Snapshot:
    return Snapshot(
        market=market,
        ts_ns=ts_ns,
        fair_value=60_000.1,
        best_bid=60_000.0,
        best_ask=60_000.2,
        quote_bid=59_999.5,
        quote_ask=60_000.7,
        position_base=0.012,
        net_exposure_base=0.004,
        pnl_total=12.5,
        pnl_spread_capture=9.1,
        pnl_fees=-0.8,
        pnl_inventory=4.0,
        pnl_hedge_cost=-0.6,
        pnl_basis=0.2,
        pnl_funding=-0.05,
        drawdown_peak=14.0,
        risk_state="ACTIVE",
        paused=False,
    )


# -- fills, and the recovery journal they build --------------------------------------------------


def build_recovery_journal(
    path: Path, fills: int, *, fsync_each_commit: bool = False, snapshots: bool = True
) -> list[int]:
    """Record `fills` fills as the daemon would; return each record_fill's duration in ns."""
    rng = random.Random(7)
    ledger = Ledger(SPOT, {PERP.venue: 1.0})
    ledger.add_instrument(PERP)
    durations: list[int] = []
    perf = time.perf_counter_ns
    with Journal.open(path, retention_s=None, fsync_each_commit=fsync_each_commit) as journal:
        journal.register_instrument(SPOT)
        journal.register_instrument(PERP)
        journal.start_run(mode="paper", instance_id="bench", config_yaml="", ts_ns=0)
        fair = 60_000.0
        for n in range(1, fills + 1):
            ts = n * 50_000_000
            if n % 10 == 0:
                fair += rng.choice((-1.0, 1.0)) * rng.random() * 5
                ledger.on_fair_value(SPOT.venue, SPOT.symbol, fair)
                ledger.on_fair_value(PERP.venue, PERP.symbol, fair + 25.0)
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            if n % 10 == 5:
                hedge_ticks = PERP.price_to_ticks(fair + 25.0)
                request = OrderRequest(
                    PERP.venue, PERP.symbol, f"hdg-{n}", side, hedge_ticks, rng.randint(1, 20)
                )
                intent = HedgeIntent(request, fair + 25.0, fair, side * 0.001 * request.size_lots)
                journal.record_hedge_decision("BTC", intent, ts)
                ledger.on_hedge_intent(intent)
                instrument, client, lots = PERP, request.client_order_id, request.size_lots
                price, liquidity, fee = request.price_ticks, Liquidity.TAKER, 0.5
            else:
                instrument, client, lots = SPOT, f"q-{n // 3}", rng.randint(100, 2_000)
                price = SPOT.price_to_ticks(fair) - side * rng.randint(1, 30)
                liquidity, fee = Liquidity.MAKER, 0.0
            fill = Fill(instrument.venue, instrument.symbol, ts, ts, client, f"x{n}", str(n),
                        side, price, lots, fee, liquidity)  # fmt: skip
            marks = ledger.entry_marks(fill)
            t0 = perf()
            journal.record_fill("BTC", fill, marks)
            durations.append(perf() - t0)
            ledger.on_fill(fill, marks)
            if n % 1_000 == 500:  # the last one 500 fills before the end: those are replayed
                state = ledger.export_state(hedge_decisions=False)
                journal.record_checkpoint("BTC", ts, ledger=state, risk=None)
        for second in range(86_400 if snapshots else 0):
            journal.record_snapshot(snapshot("BTC", second * S))
            journal.record_snapshot(snapshot("ETH", second * S))
            if second % 5_000 == 0:
                journal.flush()
    return durations


def recovery_times(path: Path) -> dict[str, float]:
    perf = time.perf_counter
    t0 = perf()
    journal = Journal.open(path)
    t1 = perf()
    recovery = journal.recover()
    t2 = perf()
    ledger = Ledger(SPOT, {PERP.venue: 1.0})
    ledger.add_instrument(PERP)
    replayed = recovery.market("BTC").restore_ledger(ledger)
    t3 = perf()
    journal.close()
    t4 = perf()
    Journal.open(path, integrity_check=False).close()
    t5 = perf()
    return {
        "open_s": t1 - t0,
        "open_without_integrity_check_s": t5 - t4,
        "read_recovery_s": t2 - t1,
        "rebuild_ledger_s": t3 - t2,
        "total_s": t3 - t0,
        "fills_booked_again": replayed,
    }


# -- snapshots ------------------------------------------------------------------------------------


def snapshot_costs(folder: Path) -> dict[str, dict[str, float]]:
    perf = time.perf_counter_ns
    caller: list[int] = []
    commit: list[int] = []
    with Journal.open(folder / "snapshots.db", flush_interval_s=3600.0) as journal:
        journal.start_run(mode="paper", instance_id="bench", config_yaml="", ts_ns=0)
        for second in range(2_000):
            for market in range(MARKETS):
                row = snapshot(f"M{market}", second * S)
                t0 = perf()
                journal.record_snapshot(row)
                caller.append(perf() - t0)
            t0 = perf()
            journal.flush()
            commit.append(perf() - t0)
    return {"record_snapshot": summary_us(caller), "commit_10_snapshots": summary_us(commit)}


# -- stdlib against aiosqlite --------------------------------------------------------------------

_ROW_SQL = "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"


def direct_commits(path: Path, n: int, synchronous: str) -> list[int]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE t (a TEXT UNIQUE, b REAL, c INTEGER)")
    perf = time.perf_counter_ns
    durations = []
    for i in range(n):
        t0 = perf()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_ROW_SQL, (str(i), 1.5, i))
        conn.execute("COMMIT")
        durations.append(perf() - t0)
    conn.close()
    return durations


async def _aiosqlite_commits(path: Path, n: int, synchronous: str) -> list[int]:
    import aiosqlite  # noqa: PLC0415  only this comparison needs it

    conn = await aiosqlite.connect(path, isolation_level=None)
    for statement in ("PRAGMA journal_mode = WAL", f"PRAGMA synchronous = {synchronous}",
                      "CREATE TABLE t (a TEXT UNIQUE, b REAL, c INTEGER)"):  # fmt: skip
        await conn.execute(statement)
    perf = time.perf_counter_ns
    durations = []
    for i in range(n):
        t0 = perf()
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute(_ROW_SQL, (str(i), 1.5, i))
        await conn.execute("COMMIT")
        durations.append(perf() - t0)
    await conn.close()
    return durations


def aiosqlite_commits(path: Path, n: int, synchronous: str) -> list[int] | None:
    try:
        import aiosqlite  # noqa: F401, PLC0415  present only with the dev extras
    except ImportError:
        return None
    return asyncio.run(_aiosqlite_commits(path, n, synchronous))


# -- the book-update path -------------------------------------------------------------------------

BOOK_INSTRUMENT = replace(SPOT, venue="bench")


def book_deltas(n: int, seed: int = 3) -> Iterator[BookDelta | BookSnapshot]:
    """A book of 50 levels a side whose touch moves 1-3 ticks per delta, with 6 size changes
    near it: about 10 level changes a delta."""
    rng = random.Random(seed)
    bid = 6_000_000
    yield BookSnapshot(
        "bench", SPOT.symbol, 0, 0, 1,
        tuple((bid - i, rng.randint(1_000, 50_000)) for i in range(50)),
        tuple((bid + 1 + i, rng.randint(1_000, 50_000)) for i in range(50)),
    )  # fmt: skip
    for i in range(n):
        step = rng.choice((-3, -2, -1, 1, 2, 3))
        lo, hi = (bid + 1, bid + step + 1) if step > 0 else (bid + step + 1, bid + 1)
        moved = [(px, rng.randint(1_000, 50_000)) for px in range(lo, hi)]
        gone = [(px, 0) for px in range(lo, hi)]
        bid += step
        near_bids = [(bid - rng.randrange(20), rng.randint(1_000, 50_000)) for _ in range(3)]
        near_asks = [(bid + 1 + rng.randrange(20), rng.randint(1_000, 50_000)) for _ in range(3)]
        bids, asks = (moved, gone) if step > 0 else (gone, moved)
        ts = (i + 1) * 400_000
        yield BookDelta("bench", SPOT.symbol, ts, ts, i + 2, i + 2, -1,
                        tuple(bids + near_bids), tuple(asks + near_asks))  # fmt: skip


def book_op() -> Callable[[BookDelta | BookSnapshot], None]:
    state = MarketState(BOOK_INSTRUMENT, fair_value_model="microprice")
    quoter = Quoter(
        QuoteParams(model="linear_skew", order_size_base=0.01, lot_base=SPOT.lot_size,
                    min_notional_quote=SPOT.min_notional_quote, tick_size=SPOT.tick_size,
                    spread_bps=4.0, skew_bps_per_base=10.0, inventory_limit_base=0.1)
    )  # fmt: skip

    def op(event: BookDelta | BookSnapshot) -> None:
        state.on_event(event)
        fair = state.fair_value_ticks
        if fair is not None:
            book = state.book
            quoter.quote(
                MarketInputs(fair, book.best_bid_ticks, book.best_ask_ticks,
                             state.volatility.value * fair),
                0.0,
                event.ts_local_ns,
            )  # fmt: skip

    return op


def paced(
    events: list[BookDelta | BookSnapshot],
    op: Callable[[BookDelta | BookSnapshot], None],
    after_event: Callable[[], None],
    each_second: Callable[[], None],
    every_quarter_second: Callable[[], None] | None,
) -> tuple[list[int], list[int]]:
    """Open loop at EVENT_RATE: each event's latency from its due time to done, and its own
    processing time (the op and the event's journal work)."""
    perf = time.perf_counter_ns
    interval = S // EVENT_RATE
    start = perf() + 5_000_000
    next_second = start + S
    next_quarter = start + S // 4
    latencies = []
    processing = []
    for index, event in enumerate(events):
        due = start + index * interval
        ahead = due - perf()
        if ahead > 150_000:
            time.sleep((ahead - 100_000) / S)  # the loop waits in its poll: the GIL is free
        while perf() < due:
            pass
        began = perf()
        op(event)
        if index % ORDER_EVERY == 0:
            after_event()
        done = perf()
        latencies.append(done - due)
        processing.append(done - began)
        if due >= next_second:
            each_second()
            next_second += S
        if every_quarter_second is not None and due >= next_quarter:
            every_quarter_second()
            next_quarter += S // 4
    return latencies, processing


def book_path_case(
    case: str, events: list[BookDelta | BookSnapshot], folder: Path
) -> tuple[list[int], list[int]]:
    op = book_op()
    request = OrderRequest(SPOT.venue, SPOT.symbol, "q-1", Side.BUY, 5_999_900, 100)
    snapshots = [snapshot(f"M{m}", 0) for m in range(MARKETS)]
    gc.collect()
    if case == "journal off":
        return paced(events, op, lambda: None, lambda: None, None)
    if case == "loop commits every 0.25 s":
        conn = sqlite3.connect(folder / f"{case}.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE orders (a, b, c, d, e, f, g)")
        conn.execute("CREATE TABLE snapshots (a, b, c, d, e, f, g)")
        orders: list[tuple[Any, ...]] = []
        rows: list[tuple[Any, ...]] = []

        def record() -> None:
            orders.append(("BTC", 0, "new", request.venue, request.symbol, "q-1", 5_999_900))

        def record_snapshots() -> None:
            rows.extend(("M", 0, 1.0, 2.0, 3.0, 4.0, "ACTIVE") for _ in snapshots)

        def commit() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", orders)
            conn.executemany("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            orders.clear()
            rows.clear()

        try:
            return paced(events, op, record, record_snapshots, commit)
        finally:
            conn.close()
    flush_interval = 0.001 if case == "writer thread busy (1 ms)" else 0.25
    with Journal.open(folder / f"{case}.db", flush_interval_s=flush_interval) as journal:
        journal.register_instrument(SPOT)
        journal.start_run(mode="paper", instance_id="bench", config_yaml="", ts_ns=0)

        def record_snapshots() -> None:
            for row in snapshots:
                journal.record_snapshot(row)

        return paced(
            events, op, lambda: journal.record_order("BTC", request, 0), record_snapshots, None
        )


BOOK_CASES = (
    "journal off",
    "writer thread (0.25 s)",
    "writer thread busy (1 ms)",
    "loop commits every 0.25 s",
)


# -- main -----------------------------------------------------------------------------------------


class _TimedVenue:
    """An Execution that notes when the engine hands it an order action."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handed_ns = 0
        self.answers: list[OrderUpdate] = []  # what the venue would say, delivered next turn

    @property
    def venue(self) -> str:
        return self.name

    async def place(self, request: OrderRequest) -> None:
        self.handed_ns = self.handed_ns or time.perf_counter_ns()
        self.answers.append(request.as_update(OrderStatus.OPEN, 0))

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        self.handed_ns = self.handed_ns or time.perf_counter_ns()
        self.answers.append(
            replace(
                request.as_update(OrderStatus.CANCELLED, 0), client_order_id=old_client_order_id
            )
        )
        self.answers.append(request.as_update(OrderStatus.OPEN, 0))

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        del symbol, client_order_id
        self.handed_ns = self.handed_ns or time.perf_counter_ns()


def _engine(journal: Journal | None) -> tuple[Any, _TimedVenue]:
    """One market of the daemon's engine (BTC spot quoted, hedged on the perpetual)."""
    from mm_daemon.config import (  # noqa: PLC0415  only this case needs the engine
        HedgingConfig,
        InventoryConfig,
        MarketDataConfig,
        QuotingConfig,
        RiskConfig,
    )
    from mm_daemon.core.hedging import Hedger  # noqa: PLC0415
    from mm_daemon.core.markouts import MarkoutTracker  # noqa: PLC0415
    from mm_daemon.core.risk import RiskGate  # noqa: PLC0415
    from mm_daemon.engine import wiring  # noqa: PLC0415
    from mm_daemon.engine.asset import AssetBook, HedgeLeg  # noqa: PLC0415
    from mm_daemon.engine.metrics import Metrics  # noqa: PLC0415
    from mm_daemon.engine.orders import OrderManager, OrderManagerSettings  # noqa: PLC0415
    from mm_daemon.engine.portfolio import Portfolio  # noqa: PLC0415
    from mm_daemon.engine.trader import MarketTrader  # noqa: PLC0415

    metrics = Metrics()
    venue = _TimedVenue(SPOT.venue)
    if journal is not None:
        journal.register_instrument(SPOT)
        journal.register_instrument(PERP)
        journal.start_run(mode="paper", instance_id="bench", config_yaml="", ts_ns=0)
    ledger = Ledger(SPOT)
    ledger.add_instrument(PERP)
    hedger = Hedger(wiring.hedge_params(HedgingConfig(threshold_base=1e9)), PERP)
    leg = HedgeLeg(
        wiring.market_state(PERP, MarketDataConfig(fair_value="mid")),
        _TimedVenue(PERP.venue),  # type: ignore[arg-type]  the engine only sends to it
        hedger,
    )
    asset = AssetBook("BTC", ledger, metrics, hedge=leg, journal=journal)
    quoting = QuotingConfig(model="fixed", spread_bps=1.0, min_spread_bps=0.0, levels=1)
    inventory = InventoryConfig(limit_base=1e6)
    risk = RiskGate(wiring.risk_limits(RiskConfig(price_band_bps=10_000), inventory, quoting, SPOT))
    MarketTrader(
        name="BTC/USDT@binance",
        state=wiring.market_state(SPOT, MarketDataConfig(fair_value="mid")),
        quoter=Quoter(wiring.quote_params(quoting, inventory, SPOT)),
        orders=OrderManager(
            venue,  # type: ignore[arg-type]  the engine only sends to it
            SPOT,
            OrderManagerSettings(),  # no budget given: unlimited
            risk=risk,
            metrics=metrics,
            journal=journal,
        ),
        markouts=MarkoutTracker(),
        risk=risk,
        asset=asset,
        metrics=metrics,
        journal=journal,
    )
    return Portfolio([asset], metrics, journal=journal), venue


async def _engine_case(journal: Journal | None, n: int) -> list[int]:
    portfolio, venue = _engine(journal)
    bid = 6_000_000
    portfolio.on_market_event(
        BookSnapshot(SPOT.venue, SPOT.symbol, 0, 0, 1, ((bid, 50_000),), ((bid + 2, 50_000),))
    )
    perp_bid = bid // 10  # the hedge venue's book: up, so the market quotes both sides
    portfolio.on_market_event(
        BookSnapshot(PERP.venue, PERP.symbol, 0, 0, 1, ((perp_bid, 500),), ((perp_bid + 1, 500),))
    )
    samples: list[int] = []
    market = portfolio.markets[0]
    trade = 0
    for i in range(n):
        old = bid
        bid += 40 if (i // 50) % 2 == 0 else -40  # 6.7 bps a step: past the tolerance
        delta = BookDelta(
            SPOT.venue,
            SPOT.symbol,
            0,
            0,
            i + 2,
            i + 2,
            -1,
            ((old, 0), (bid, 50_000)),
            ((old + 2, 0), (bid + 2, 50_000)),
        )
        venue.handed_ns = 0
        start = time.perf_counter_ns()
        portfolio.on_market_event(delta)
        if venue.handed_ns:
            samples.append(venue.handed_ns - start)
        if i % 20 == 0:
            live = market.orders.live_orders()
            if live:
                order = live[0]
                trade += 1
                portfolio.on_execution_event(
                    Fill(
                        SPOT.venue,
                        SPOT.symbol,
                        0,
                        0,
                        order.client_order_id,
                        "1",
                        str(trade),
                        order.side,
                        order.price_ticks,
                        1,
                        0.0,
                        Liquidity.MAKER,
                    )
                )
        await asyncio.sleep(0)  # the loop's turn: the order tasks finish, as in the daemon
        answers, venue.answers = venue.answers, []
        for answer in answers:
            portfolio.on_execution_event(answer)
    return samples


def engine_tick_to_quote(folder: Path, n: int, rounds: int) -> dict[str, dict[str, float]]:
    """Journal off and on in alternate rounds; medians of each round's percentiles."""
    runs: dict[str, list[dict[str, float]]] = {"journal off": [], "journal on": []}
    for round_ in range(rounds):
        cases = ("journal off", "journal on") if round_ % 2 == 0 else ("journal on", "journal off")
        for case in cases:
            gc.collect()
            journal = None
            if case == "journal on":
                journal = Journal.open(folder / f"engine{round_}.journal")
            try:
                runs[case].append(summary_us(asyncio.run(_engine_case(journal, n))))
            finally:
                if journal is not None:
                    journal.close()
    return {case: median_of(stats) for case, stats in runs.items()}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--engine-only", action="store_true", help="only the engine tick-to-quote case"
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": load,
        "fills": args.fills,
        "runs": args.runs,
    }
    configure_logging("warning", "console")  # the engine logs every fill at info
    if args.engine_only:
        with tempfile.TemporaryDirectory(dir=RESULTS.parent.parent) as tmp:
            engine = engine_tick_to_quote(Path(tmp), 20_000, max(args.runs, 2) * 2)
        print_engine(engine)
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        previous["engine_tick_to_quote"] = engine
        previous["engine_tick_to_quote_load_average"] = load
        RESULTS.write_text(json.dumps(previous, indent=2) + "\n", encoding="utf-8")
        return
    with tempfile.TemporaryDirectory(dir=RESULTS.parent.parent) as tmp:
        folder = Path(tmp)
        print(f"building a journal of {args.fills:,} fills (load average {load:.2f}) ...")
        fill_durations = build_recovery_journal(folder / "recovery.db", args.fills)
        results["record_fill"] = summary_us(fill_durations)
        fsynced = build_recovery_journal(
            folder / "fsynced.db", 2_000, fsync_each_commit=True, snapshots=False
        )
        results["record_fill_fsync_each_commit"] = summary_us(fsynced)
        results.update(snapshot_costs(folder))

        for synchronous in ("NORMAL", "FULL"):
            direct_runs, aio_runs = [], []
            for run in range(args.runs):
                direct = direct_commits(folder / f"direct{synchronous}{run}.db", 2_000, synchronous)
                direct_runs.append(summary_us(direct))
                aio = aiosqlite_commits(folder / f"aio{synchronous}{run}.db", 2_000, synchronous)
                if aio is not None:
                    aio_runs.append(summary_us(aio))
            results[f"commit_{synchronous.lower()}_sqlite3"] = median_of(direct_runs)
            results[f"commit_{synchronous.lower()}_aiosqlite"] = (
                median_of(aio_runs) if aio_runs else None
            )

        with_checkpoints = folder / "recovery.db"
        without = folder / "no-checkpoints.db"
        shutil.copyfile(with_checkpoints, without)
        conn = sqlite3.connect(without)
        conn.execute("DELETE FROM checkpoints")
        conn.commit()
        conn.close()
        results["journal_bytes"] = with_checkpoints.stat().st_size
        results["recovery_checkpoint_every_1000_fills"] = median_of(
            [recovery_times(with_checkpoints) for _ in range(args.runs)]
        )
        results["recovery_no_checkpoint"] = median_of(
            [recovery_times(without) for _ in range(args.runs)]
        )

        events = list(book_deltas(int(args.seconds * EVENT_RATE)))
        book_runs: dict[str, list[dict[str, float]]] = {case: [] for case in BOOK_CASES}
        work_runs: dict[str, list[dict[str, float]]] = {case: [] for case in BOOK_CASES}
        for run in range(args.runs):
            (folder / f"book{run}").mkdir()
            order = BOOK_CASES if run % 2 == 0 else tuple(reversed(BOOK_CASES))
            for case in order:
                latencies, processing = book_path_case(case, events, folder / f"book{run}")
                book_runs[case].append(summary_us(latencies))
                work_runs[case].append(summary_us(processing))
        results["book_update_path"] = {case: median_of(book_runs[case]) for case in BOOK_CASES}
        results["book_update_processing"] = {
            case: median_of(work_runs[case]) for case in BOOK_CASES
        }
        results["engine_tick_to_quote"] = engine_tick_to_quote(folder, 20_000, args.runs * 2)

    print_tables(results)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def print_tables(results: dict[str, Any]) -> None:
    print(f"\nPython {results['python']}, SQLite {results['sqlite']}, "
          f"load average at start {results['load_average_at_start']:.2f}")  # fmt: skip
    print(f"\n{'operation':<44}{'p50 us':>10}{'p99 us':>10}{'count':>9}")
    rows = [
        ("record_fill (committed to the WAL)", results["record_fill"]),
        ("record_fill, fsync_each_commit", results["record_fill_fsync_each_commit"]),
        ("record_snapshot (caller: buffer append)", results["record_snapshot"]),
        ("writer commit of 10 snapshots", results["commit_10_snapshots"]),
    ]
    for synchronous, label in (("normal", "WAL commit"), ("full", "fsynced commit")):
        rows.append((f"one row, {label}: stdlib sqlite3", results[f"commit_{synchronous}_sqlite3"]))
        aio = results[f"commit_{synchronous}_aiosqlite"]
        if aio is not None:
            rows.append((f"one row, {label}: aiosqlite", aio))
    for name, stats in rows:
        print(
            f"{name:<44}{stats['p50_us']:>10,.1f}{stats['p99_us']:>10,.1f}{stats['count']:>9,.0f}"
        )
    print(f"\nrecovery of {results['fills']:,} fills + 1 day of 1 s snapshots of 2 markets "
          f"({results['journal_bytes'] / 1e6:,.0f} MB)")  # fmt: skip
    print(
        f"{'':<30}{'open':>8}{'(no check)':>11}{'read':>8}{'rebuild':>9}{'total s':>9}{'fills':>8}"
    )
    for name, key in (
        ("checkpoint every 1,000 fills", "recovery_checkpoint_every_1000_fills"),
        ("no checkpoint", "recovery_no_checkpoint"),
    ):
        r = results[key]
        print(f"{name:<30}{r['open_s']:>8.3f}{r['open_without_integrity_check_s']:>11.3f}"
              f"{r['read_recovery_s']:>8.3f}{r['rebuild_ledger_s']:>9.3f}{r['total_s']:>9.3f}"
              f"{r['fills_booked_again']:>8,.0f}")  # fmt: skip
    if "engine_tick_to_quote" in results:
        print_engine(results["engine_tick_to_quote"])
    print(f"\nbook update + quote at {EVENT_RATE:,}/s (us): latency from the due time | "
          "the event's own processing")  # fmt: skip
    print(f"{'case':<28}{'p50':>8}{'p99':>9}{'p99.9':>9}{'max':>9} |{'p50':>7}{'p99':>8}")
    for case, stats in results["book_update_path"].items():
        work = results["book_update_processing"][case]
        print(f"{case:<28}{stats['p50_us']:>8.1f}{stats['p99_us']:>9.1f}"
              f"{stats['p999_us']:>9.1f}{stats['max_us']:>9.1f} |"
              f"{work['p50_us']:>7.1f}{work['p99_us']:>8.1f}")  # fmt: skip


def print_engine(engine: dict[str, dict[str, float]]) -> None:
    off, on = engine["journal off"], engine["journal on"]
    print("\nengine tick-to-quote: book delta to the order handed to the venue (us)")
    print(f"{'case':<16}{'p50':>8}{'p90':>8}{'p99':>9}{'samples':>10}")
    for case, stats in engine.items():
        print(f"{case:<16}{stats['p50_us']:>8.1f}{stats['p90_us']:>8.1f}{stats['p99_us']:>9.1f}"
              f"{stats['count']:>10,.0f}")  # fmt: skip
    ratios = [on[k] / off[k] for k in ("p50_us", "p90_us", "p99_us")]
    print(f"{'on / off':<16}{ratios[0]:>8.2f}{ratios[1]:>8.2f}{ratios[2]:>9.2f}")


if __name__ == "__main__":
    main()
