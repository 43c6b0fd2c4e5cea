"""Property: a process killed at random points and restarted from its journal ends with exactly
the ledgers of a run never killed; no fill is missing and none is booked twice.

The "process" books random orders, partial fills, hedge decisions and hedge fills of two
markets (BTC quoted on spot and hedged on the perpetual; ETH quoted on spot) into its ledgers
and its journal the way the daemon does: a fill is committed, then counted; a hedge decision
is committed before its order goes out; checkpoints and order records are buffered and reach
the file only when the writer commits (random "writer ticks") or a durable record carries
them. A kill is a crash image: the database and its WAL copied as they are at that instant
(nothing else writes meanwhile), the process gone with everything in memory. The restarted
process opens the image, restores its ledgers from the latest checkpoint and the fills after
it, takes the market's current fair values (as a restart reads the market before it quotes),
is handed again the fills the venue reports since before the kill (each must be refused as a
duplicate), and carries on with the events that remain.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_daemon.core.hedging import HedgeIntent
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.types import (
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderRequest,
    OrderType,
    Side,
)
from mm_daemon.engine.journal import FillOutcome, Journal

SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP
ETH = Instrument(
    venue="sim-spot",
    symbol="ETH/USDT",
    exchange_symbol="ETHUSDT",
    kind=InstrumentKind.SPOT,
    base="ETH",
    quote="USDT",
    tick_size=0.01,
    lot_size=0.0001,
)
MARKETS: dict[str, tuple[Instrument, ...]] = {"BTC": (SPOT, PERP), "ETH": (ETH,)}
INSTRUMENTS = (SPOT, PERP, ETH)
BASE_PRICE = {SPOT: 60_000.0, PERP: 60_030.0, ETH: 3_000.0}
MAKER_FEE_RATE = -0.0001  # a rebate
TAKER_FEE_RATE = 0.0004
NO_FLUSH = 3600.0  # the writer thread never wakes: buffered records wait for a tick
REDELIVERED = 8  # events before a kill whose fills the venue reports again


@dataclass(frozen=True, slots=True)
class FairValue:
    instrument: Instrument
    fair: float


@dataclass(frozen=True, slots=True)
class OrderSent:
    market: str
    request: OrderRequest


@dataclass(frozen=True, slots=True)
class HedgeDecided:
    market: str
    intent: HedgeIntent


@dataclass(frozen=True, slots=True)
class Filled:
    market: str
    fill: Fill


@dataclass(frozen=True, slots=True)
class Checkpointed:
    market: str


@dataclass(frozen=True, slots=True)
class WriterTick:
    pass


Event = FairValue | OrderSent | HedgeDecided | Filled | Checkpointed | WriterTick


@dataclass(slots=True)
class _Resting:
    market: str
    instrument: Instrument
    client_order_id: str
    side: Side
    price_ticks: int
    remaining: int
    hedge: bool


def build_events(steps: list[tuple[object, ...]]) -> list[Event]:
    """Concrete events from the generated steps: ids, prices and fees made consistent."""
    fair: dict[Instrument, float] = {}
    resting: list[_Resting] = []
    trade_ids = dict.fromkeys(INSTRUMENTS, 1000)
    events: list[Event] = []
    for n, step in enumerate(steps):
        kind = step[0]
        if kind == "fair":
            _, index, move = step
            instrument = INSTRUMENTS[int(index)]  # type: ignore[call-overload]
            fair[instrument] = BASE_PRICE[instrument] + int(move) * 0.37  # type: ignore[call-overload]
            events.append(FairValue(instrument, fair[instrument]))
        elif kind == "order":
            _, market, side, lots, offset = step
            instrument = MARKETS[str(market)][0]
            order_side = Side(side)
            mid = instrument.price_to_ticks(fair.get(instrument, BASE_PRICE[instrument]))
            price = mid - order_side * int(offset)  # type: ignore[call-overload]
            request = OrderRequest(
                instrument.venue,
                instrument.symbol,
                f"q-{n}",
                order_side,
                price,
                int(lots),  # type: ignore[call-overload]
            )
            resting.append(
                _Resting(str(market), instrument, request.client_order_id, order_side, price,
                         request.size_lots, hedge=False)
            )  # fmt: skip
            events.append(OrderSent(str(market), request))
        elif kind == "hedge":
            _, side, lots = step
            order_side = Side(side)
            hedge_fair = fair.get(PERP, BASE_PRICE[PERP])
            reference_fair = fair.get(SPOT, BASE_PRICE[SPOT])
            request = OrderRequest(
                PERP.venue,
                PERP.symbol,
                f"hdg-{n}",
                order_side,
                PERP.price_to_ticks(hedge_fair) + order_side * 5,
                int(lots),  # type: ignore[call-overload]
                order_type=OrderType.IOC,
            )
            exposure = order_side * PERP.lots_to_base(request.size_lots)
            resting.append(
                _Resting("BTC", PERP, request.client_order_id, order_side,
                         request.price_ticks, request.size_lots, hedge=True)
            )  # fmt: skip
            events.append(
                HedgeDecided("BTC", HedgeIntent(request, hedge_fair, reference_fair, exposure))
            )
        elif kind == "fill" and resting:
            _, pick, percent, taker = step
            order = resting[int(pick) % len(resting)]  # type: ignore[call-overload]
            size = max(1, order.remaining * int(percent) // 100)  # type: ignore[call-overload]
            taker = bool(taker) or order.hedge
            rate = TAKER_FEE_RATE if taker else MAKER_FEE_RATE
            trade_ids[order.instrument] += 1
            fill = Fill(
                venue=order.instrument.venue,
                symbol=order.instrument.symbol,
                ts_exchange_ns=n,
                ts_local_ns=n,
                client_order_id=order.client_order_id,
                exchange_order_id=f"x-{order.client_order_id}",
                trade_id=str(trade_ids[order.instrument]),
                side=order.side,
                price_ticks=order.price_ticks,
                size_lots=size,
                fee_quote=round(
                    order.instrument.notional_quote(order.price_ticks, size) * rate, 10
                ),
                liquidity=Liquidity.TAKER if taker else Liquidity.MAKER,
            )
            order.remaining -= size
            if order.remaining == 0:
                resting.remove(order)
            events.append(Filled(order.market, fill))
        elif kind == "checkpoint":
            events.append(Checkpointed(str(step[1])))
        elif kind == "tick":
            events.append(WriterTick())
    return events


def new_ledger(market: str) -> Ledger:
    instruments = MARKETS[market]
    ledger = Ledger(instruments[0], {PERP.venue: 1.25})
    for instrument in instruments[1:]:
        ledger.add_instrument(instrument)
    return ledger


class Process:
    """One life of the daemon: its ledgers in memory and its journal on disk."""

    def __init__(self, path: Path) -> None:
        self.journal = Journal.open(path, flush_interval_s=NO_FLUSH)
        for instrument in INSTRUMENTS:
            self.journal.register_instrument(instrument)
        self.ledgers = {market: new_ledger(market) for market in MARKETS}

    def restore(self, market_fair: dict[Instrument, float]) -> None:
        recovery = self.journal.recover()
        for market, ledger in self.ledgers.items():
            recovery.market(market).restore_ledger(ledger)
            for instrument in MARKETS[market]:
                if instrument in market_fair:
                    ledger.on_fair_value(
                        instrument.venue, instrument.symbol, market_fair[instrument]
                    )

    def start(self) -> None:
        self.journal.start_run(mode="paper", instance_id="prop", config_yaml="", ts_ns=0)

    def handle(self, event: Event) -> FillOutcome | None:
        journal = self.journal
        if isinstance(event, FairValue):
            for market, ledger in self.ledgers.items():
                if event.instrument in MARKETS[market]:
                    ledger.on_fair_value(
                        event.instrument.venue, event.instrument.symbol, event.fair
                    )
        elif isinstance(event, OrderSent):
            journal.record_order(event.market, event.request, event.request.price_ticks)
        elif isinstance(event, HedgeDecided):
            journal.record_hedge_decision(event.market, event.intent, 0)
            self.ledgers[event.market].on_hedge_intent(event.intent)
        elif isinstance(event, Filled):
            ledger = self.ledgers[event.market]
            marks = ledger.entry_marks(event.fill)
            outcome = journal.record_fill(event.market, event.fill, marks)
            if outcome is not FillOutcome.DUPLICATE:
                ledger.on_fill(event.fill, marks)
            return outcome
        elif isinstance(event, Checkpointed):
            state = self.ledgers[event.market].export_state(hedge_decisions=False)
            journal.record_checkpoint(event.market, 0, ledger=state, risk=None)
        else:
            journal.flush()
        return None


def crash_image(path: Path, folder: Path) -> Path:
    folder.mkdir()
    image = folder / path.name
    for side in ("", "-wal"):
        if Path(f"{path}{side}").exists():
            shutil.copyfile(f"{path}{side}", f"{image}{side}")
    return image


def run(events: list[Event], kills: set[int], folder: Path) -> Process:
    """Play the events; before each index in `kills` (`len(events)`: after the last) the
    process is killed and restarted."""
    (folder / "0").mkdir(parents=True)
    process = Process(folder / "0" / "journal.db")
    process.start()
    market_fair: dict[Instrument, float] = {}
    for index, event in enumerate([*events, None]):
        if index in kills:
            image = crash_image(process.journal.path, folder / str(index + 1))
            process.journal.close()  # the dead process's own file is never read again
            process = Process(image)
            process.restore(market_fair)
            process.start()
            for earlier in events[max(0, index - REDELIVERED) : index]:
                if isinstance(earlier, Filled):
                    assert process.handle(earlier) is FillOutcome.DUPLICATE
        if event is None:
            break
        if isinstance(event, FairValue):
            market_fair[event.instrument] = event.fair
        process.handle(event)
    return process


def journaled_trades(process: Process) -> list[tuple[str, str, str]]:
    def read(conn: object) -> list[tuple[str, str, str]]:
        return conn.execute("SELECT venue, symbol, trade_id FROM fills").fetchall()  # type: ignore[attr-defined,no-any-return]

    return sorted(process.journal._store.read(read))  # the test reads the file it owns


_sides = st.sampled_from([1, -1])
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("fair"), st.integers(0, 2), st.integers(-400, 400)),
        st.tuples(
            st.just("order"),
            st.sampled_from(["BTC", "ETH"]),
            _sides,
            st.integers(1, 5_000),
            st.integers(0, 30),
        ),
        st.tuples(st.just("hedge"), _sides, st.integers(1, 40)),
        st.tuples(st.just("fill"), st.integers(0, 1_000), st.integers(1, 100), st.booleans()),
        st.tuples(st.just("fill"), st.integers(0, 1_000), st.integers(1, 100), st.booleans()),
        st.tuples(st.just("checkpoint"), st.sampled_from(["BTC", "ETH"])),
        st.tuples(st.just("tick")),
    ),
    min_size=1,
    max_size=70,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=_steps, kill_points=st.lists(st.integers(0, 10**6), min_size=1, max_size=5))
def test_killed_and_recovered_ledgers_equal_an_uninterrupted_run(
    tmp_path: Path, steps: list[tuple[object, ...]], kill_points: list[int]
) -> None:
    events = build_events(steps)
    kills = {point % (len(events) + 1) for point in kill_points}
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        straight = run(events, set(), Path(folder) / "straight")
        killed = run(events, kills, Path(folder) / "killed")
        try:
            for market in MARKETS:
                assert killed.ledgers[market].export_state() == (
                    straight.ledgers[market].export_state()
                )
                assert killed.ledgers[market].pnl() == straight.ledgers[market].pnl()
            fills = sorted(
                (e.fill.venue, e.fill.symbol, e.fill.trade_id)
                for e in events
                if isinstance(e, Filled)
            )
            assert journaled_trades(killed) == fills
            assert journaled_trades(straight) == fills
        finally:
            straight.journal.close()
            killed.journal.close()
