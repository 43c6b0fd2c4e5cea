"""Restart recovery with real processes: a daemon quoting live on a standalone simulator is
SIGKILLed, the market trades against the orders it left, and a new daemon on the same state
folder picks up from the journal and the venue.

The simulator runs on in its own process throughout, as an exchange does; another account
(the taker) sells into the daemon's bid so that a position exists and fills happen while the
daemon is dead.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.procs import (
    HEDGE_KEY,
    MAKER_KEY,
    DaemonProcess,
    SimProcess,
    journal_fills,
    live_config,
    live_env,
    running,
)
from tests.support import poll

SPOT = {"venue": "sim-spot", "symbol": "BTC/USDT"}
PERP = {"venue": "sim-perp", "symbol": "BTC/USDT:USDT"}
LOT_SPOT = 0.00001
LOT_PERP = 0.001
RECOVERY_DEADLINE_S = 10.0
JOURNAL = "restart-test.journal"


@pytest.fixture
def sim(tmp_path: Path) -> Any:
    simulator = SimProcess.start(tmp_path, regime="calm", seed=23)
    try:
        yield simulator
    finally:
        simulator.stop()


def resting_bid(sim: SimProcess, prefix: str = "") -> dict[str, Any] | None:
    return next(
        (
            o
            for o in sim.open_orders("sim-spot", MAKER_KEY)
            if o["side"] == "BUY" and o["clientOrderId"].startswith(prefix)
        ),
        None,
    )


def sell_into_bid(sim: SimProcess, prefix: str) -> float:
    """Sell into the daemon's resting bid (of the run with `prefix`) until the maker account's
    base position grows; the size sold to it.

    A live daemon may move or replace its bid between our read of it and our sell, so the sell
    can miss it; the simulator books a match before it answers the order, so the account's
    balance read after the answer says whether it did."""
    before = sim.spot_position(MAKER_KEY)
    for _ in range(5):
        bid = poll(
            lambda: resting_bid(sim, prefix),
            deadline_seconds=15,
            interval_seconds=0.1,
            what="a bid of the daemon resting at the simulator",
        )
        size = float(bid["origQty"]) - float(bid["executedQty"])
        # Everything bid down to 1 bp under ours: ours, also if it was just moved a little.
        floor = round(float(bid["price"]) * (1 - 1e-4), 2)
        at_or_above = sum(q for p, q in sim.bids() if p >= floor)
        sim.sell_through(f"{floor:.2f}", at_or_above + 2 * size)
        bought = sim.spot_position(MAKER_KEY) - before
        if bought > LOT_SPOT / 2:
            return bought
    pytest.fail("five sells at the daemon's bid did not reach it")


def positions_agree(daemon: DaemonProcess, sim: SimProcess) -> bool:
    """The daemon's positions equal the accounts' (spot beyond the opening balance, perp)
    within one lot."""
    spot = daemon.metric("mm_inventory_base", default=0.0, **SPOT)
    perp = daemon.metric("mm_inventory_base", default=0.0, **PERP)
    return (
        abs(spot - sim.spot_position(MAKER_KEY)) <= LOT_SPOT * 1.01
        and abs(perp - sim.perp_position_lots(HEDGE_KEY) * LOT_PERP) <= LOT_PERP * 1.01
    )


def test_a_killed_daemon_is_picked_up_where_it_died(sim: SimProcess, tmp_path: Path) -> None:
    state = tmp_path / "state"
    # Quotes 10 bps from fair: the flow does not reach them, so the dead run leaves orders
    # resting until the test's own sells take them.
    config = live_config(sim, state, tmp_path, quoting={"spread_bps": 20.0})
    with running(DaemonProcess.start(config, live_env())) as first:
        run1 = str(first.wait_for("run_started")["client_id_prefix"])
        sell_into_bid(sim, run1)
        poll(
            lambda: first.metric("mm_inventory_base", default=0.0, **SPOT) > 0 or None,
            deadline_seconds=10,
            interval_seconds=0.1,
            what="the taker's sell booked as a position",
        )
        poll(
            lambda: resting_bid(sim, run1),
            deadline_seconds=10,
            interval_seconds=0.05,
            what="a new bid resting",
        )
        first.kill()
    # Dead: its orders rest unmanaged, and the market keeps trading against them.
    sold_while_dead = sell_into_bid(sim, run1)
    fees_before = sum(f[5] for f in journal_fills(state / JOURNAL))

    with running(DaemonProcess.start(config, live_env())) as second:
        run2 = str(second.wait_for("run_started")["client_id_prefix"])
        assert run2 != run1
        second.wait_for("recovered", timeout_s=RECOVERY_DEADLINE_S)
        left = [
            o["clientOrderId"]
            for venue, key in (("sim-spot", MAKER_KEY), ("sim-perp", HEDGE_KEY))
            for o in sim.open_orders(venue, key)
            if o["clientOrderId"].startswith(run1)
        ]
        assert left == []
        assert second.metric("mm_recovered_fills_total", venue="sim-spot") >= 1
        assert second.metric("mm_orphan_orders_total", venue="sim-spot", action="cancelled") >= 1
        poll(
            lambda: positions_agree(second, sim) or None,
            deadline_seconds=RECOVERY_DEADLINE_S,
            interval_seconds=0.2,
            what="the daemon's positions equal to the accounts'",
        )
        # The P&L goes on from the journal's: every fee paid so far, including the fills
        # booked from the venue's history, none twice.
        fills = journal_fills(state / JOURNAL)
        assert len({f[2] for f in fills if f[0] == "sim-spot"}) == sum(
            1 for f in fills if f[0] == "sim-spot"
        )
        recovered = [line for line in second.events("fill") if line.get("recovered")]
        assert sum(float(line["size"]) for line in recovered) >= sold_while_dead - LOT_SPOT
        assert sum(f[5] for f in fills) >= fees_before
        assert second.stop() == 0


def test_adopted_orders_of_the_dead_run_are_managed(sim: SimProcess, tmp_path: Path) -> None:
    state = tmp_path / "state"
    # Quotes 10 bps from fair: they rest through the restart instead of filling.
    config = live_config(
        sim,
        state,
        tmp_path,
        state={"on_start": "adopt"},
        quoting={"spread_bps": 20.0, "max_order_age_seconds": 2.0},
    )
    with running(DaemonProcess.start(config, live_env())) as first:
        run1 = str(first.wait_for("run_started")["client_id_prefix"])
        poll(
            lambda: resting_bid(sim, run1),
            deadline_seconds=15,
            interval_seconds=0.1,
            what="a bid of the first run resting",
        )
        first.kill()
    orphans = {o["clientOrderId"] for o in sim.open_orders("sim-spot", MAKER_KEY)}
    assert orphans

    with running(DaemonProcess.start(config, live_env())) as second:
        adopted = second.wait_for("orphan_orders_adopted", timeout_s=RECOVERY_DEADLINE_S)
        assert set(adopted["client_order_ids"]) == orphans
        assert second.metric("mm_orphan_orders_total", default=0.0, venue="sim-spot",
                             action="cancelled") == 0  # fmt: skip
        # Managed: aged past max_order_age_seconds, each is replaced by this run's quotes.
        poll(
            lambda: (
                not any(
                    o["clientOrderId"] in orphans for o in sim.open_orders("sim-spot", MAKER_KEY)
                )
                or None
            ),
            deadline_seconds=RECOVERY_DEADLINE_S,
            interval_seconds=0.2,
            what="every adopted order moved by the new run",
        )
        assert second.stop() == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ten_kills_lose_no_fill_and_leave_positions_matching(tmp_path: Path) -> None:
    """10 SIGKILLs at random instants over 3 minutes of live trading in a volatile market with
    hedging on: the journal's fills are the accounts' trades one for one, and the positions
    match on both venues."""
    sim = SimProcess.start(tmp_path, regime="volatile", seed=31)
    state = tmp_path / "state"
    config = live_config(sim, state, tmp_path, hedging={"threshold_base": 0.01})
    rng = random.Random(5)
    kills = 0
    started = time.monotonic()
    try:
        while kills < 10 or time.monotonic() - started < 180:
            with running(DaemonProcess.start(config, live_env())) as daemon:
                daemon.wait_for("daemon_started", timeout_s=30)
                time.sleep(rng.uniform(8.0, 18.0))
                if kills % 3 == 0:
                    sim.market_order("sim-spot", "SELL", 0.01)  # a fill the daemon sees or misses
                time.sleep(rng.uniform(0.0, 1.0))
                daemon.kill()
                kills += 1
        with running(DaemonProcess.start(config, live_env())) as last:
            last.wait_for("recovered", timeout_s=30)
            trades = poll(
                lambda: _agreeing_trades(sim, state / JOURNAL),
                deadline_seconds=20,
                interval_seconds=0.5,
                what="the journal's fills equal to the accounts' trades",
            )
            assert trades
            poll(
                lambda: positions_agree(last, sim) or None,
                deadline_seconds=20,
                interval_seconds=0.5,
                what="positions equal on both venues",
            )
            assert last.stop() == 0
    finally:
        sim.stop()


def _agreeing_trades(sim: SimProcess, journal: Path) -> set[tuple[str, str]] | None:
    venue_trades = {("sim-spot", t) for t in sim.trade_ids("sim-spot", MAKER_KEY)} | {
        ("sim-perp", t) for t in sim.trade_ids("sim-perp", HEDGE_KEY)
    }
    journaled = [(f[0], f[2]) for f in journal_fills(journal)]
    if len(journaled) != len(set(journaled)):
        pytest.fail(f"a fill journaled twice: {len(journaled) - len(set(journaled))}")
    return venue_trades if set(journaled) == venue_trades else None
