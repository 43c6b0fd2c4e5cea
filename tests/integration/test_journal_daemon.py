"""The journal through the daemon's own process: paper runs killed and restarted, a new book
with --fresh, a halt that outlives its run, one daemon per journal, a damaged journal, and a
journal that can no longer write."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.procs import DaemonProcess, journal_fills, journal_open_orders, paper_config, running
from tests.support import poll

JOURNAL = "restart-test.journal"
LOTS = {"sim-spot": 0.00001, "sim-perp": 0.001}
POSITIONS = {"sim-spot": "BTC/USDT@sim-spot", "sim-perp": "BTC/USDT:USDT@sim-perp"}


def journal_positions(path: Path) -> dict[str, float]:
    totals = dict.fromkeys(POSITIONS.values(), 0.0)
    for venue, _symbol, _trade, side, lots, _fee in journal_fills(path):
        totals[POSITIONS[venue]] += side * lots * LOTS[venue]
    return totals


def wait_for_fills(daemon: DaemonProcess, count: int, timeout_s: float = 60.0) -> None:
    poll(
        lambda: len(daemon.events("fill")) >= count or None,
        deadline_seconds=timeout_s,
        interval_seconds=0.2,
        what=f"{count} fills",
    )


def test_a_killed_paper_run_restarts_with_its_fills_positions_and_pnl(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # A maker fee, so that the fees component has something to carry over.
    config = paper_config(
        state,
        tmp_path,
        sim={"spot_maker_fee_bps": 1.0},
        quoting={"allow_spread_below_fees": True},
    )
    with running(DaemonProcess.start(config)) as first:
        wait_for_fills(first, 4)
        first.kill()
    journaled = journal_fills(state / JOURNAL)
    assert len(journaled) >= 4  # every fill that counted was committed before it counted

    with running(DaemonProcess.start(config)) as second:
        restored = second.wait_for("journal_restored")
        # From the latest checkpoint on (none when one landed after the last fill); the
        # checkpoint holds the fills before it.
        assert 0 <= restored["fills_booked_again"] <= len(journaled)
        for name, base in journal_positions(state / JOURNAL).items():
            assert restored["positions"][name] == pytest.approx(base, abs=1e-12)
        # The quoting fills' fees (the hedges' are part of the hedge cost).
        fees = sum(fee for venue, *_, fee in journaled if venue == "sim-spot")
        assert fees > 0
        assert abs(restored["pnl"]["fees"]) == pytest.approx(fees, rel=1e-9, abs=1e-12)
        # New paper trade ids follow the journal's: the first new fill is not refused.
        wait_for_fills(second, 1)
        assert second.events("fill_already_booked") == []
        assert second.stop() == 0


def kill_with_orders_resting(config: Path, journal: Path) -> set[str]:
    """Run a paper daemon until the journal holds quotes open, SIGKILL it; their client ids."""
    with running(DaemonProcess.start(config)) as first:
        first.wait_for("daemon_started")
        poll(
            lambda: journal_open_orders(journal) or None,
            deadline_seconds=30,
            interval_seconds=0.1,
            what="quotes resting in the journal",
        )
        first.kill()
    left = journal_open_orders(journal)
    assert left  # the kill came while quotes rested
    return left


def test_paper_orders_resting_at_a_kill_are_cancelled_at_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = paper_config(state, tmp_path)
    resting = kill_with_orders_resting(config, state / JOURNAL)

    with running(DaemonProcess.start(config)) as second:
        recovered = second.wait_for("recovered")
        cancelled = {e["client_order_id"] for e in second.events("orphan_order_cancelled")}
        assert cancelled == resting
        assert recovered["orders_cancelled"] == len(resting)
        assert second.metric("mm_orphan_orders_total", venue="sim-spot", action="cancelled") == (
            len(resting)
        )
        assert second.stop() == 0
    assert journal_open_orders(state / JOURNAL).isdisjoint(resting)


def test_paper_orders_resting_at_a_kill_are_adopted_and_managed_at_restart(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    config = paper_config(state, tmp_path, state={"on_start": "adopt"})
    resting = kill_with_orders_resting(config, state / JOURNAL)

    with running(DaemonProcess.start(config)) as second:
        adopted = second.wait_for("orphan_orders_adopted")
        assert set(adopted["client_order_ids"]) == resting
        second.wait_for("daemon_started")
        assert second.stop() == 0
    # Managed: each was replaced, filled or cancelled at the stop through the paper venue.
    assert journal_open_orders(state / JOURNAL).isdisjoint(resting)


def test_fresh_starts_a_new_book_and_keeps_the_old_journal(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = paper_config(state, tmp_path)
    with running(DaemonProcess.start(config)) as first:
        wait_for_fills(first, 2)
        assert first.stop() == 0
    old = hashlib.sha256((state / JOURNAL).read_bytes()).hexdigest()

    with running(DaemonProcess.start(config, None, "--fresh")) as fresh:
        opened = fresh.wait_for("journal_opened")
        moved = Path(str(opened["moved_aside"]))
        fresh.wait_for("daemon_started")
        assert fresh.events("journal_restored") == []
        assert fresh.stop() == 0
    assert moved.parent == state
    assert moved.name != JOURNAL
    assert hashlib.sha256(moved.read_bytes()).hexdigest() == old
    assert len(journal_fills(moved)) >= 2


def test_a_halted_daemon_restarted_stays_halted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # Any drawdown past a hundredth of a USDT halts: within seconds of trading.
    config = paper_config(state, tmp_path, risk={"max_drawdown_quote": 0.01})
    with running(DaemonProcess.start(config)) as first:
        first.wait_for("risk_state", timeout_s=90, state="HALTED")
        assert first.stop() == 0

    loose = {"MMD_RISK__MAX_DRAWDOWN_QUOTE": "1000000"}  # would never halt on its own
    with running(DaemonProcess.start(config, loose)) as second:
        halted = second.wait_for("market_still_halted")
        assert "drawdown" in str(halted["reason"])
        second.wait_for("daemon_started")
        time.sleep(2.0)  # two seconds of a live market: no quote goes out
        market = "BTC/USDT@sim-spot"
        assert second.metric("mm_risk_state", market=market) == 2
        assert second.metric("mm_orders_total", default=0.0, market=market, action="place") == 0
        assert second.stop() == 0


def test_a_second_daemon_on_the_same_journal_exits_2_with_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = paper_config(state, tmp_path)
    with running(DaemonProcess.start(config)) as first:
        first.wait_for("daemon_started")
        second = DaemonProcess.start(config)
        assert second.wait_exit() == 2
        assert len(second.plain) == 1
        assert str(state / JOURNAL) in second.plain[0]
        assert "Traceback" not in "\n".join(second.plain)
        assert first.proc.poll() is None  # the first one trades on
        assert first.stop() == 0


def test_a_corrupt_journal_ends_the_start_with_one_line_and_is_left_as_it_was(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    damaged = b"SQLite format 3\x00" + bytes(range(256)) * 64
    (state / JOURNAL).write_bytes(damaged)
    daemon = DaemonProcess.start(paper_config(state, tmp_path))
    assert daemon.wait_exit() == 2
    assert len(daemon.plain) == 1, daemon.plain
    assert str(state / JOURNAL) in daemon.plain[0]
    assert (state / JOURNAL).read_bytes() == damaged


def test_a_journal_that_cannot_write_halts_quoting_and_the_daemon_stays_up(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    # A new journal takes 128 KiB; four more pages and its writes fail as on a full disk.
    config = paper_config(state, tmp_path, state={"max_bytes": 131_072 + 4 * 4_096})
    with running(DaemonProcess.start(config)) as daemon:
        daemon.wait_for("journal_failed", timeout_s=90)
        market = "BTC/USDT@sim-spot"
        poll(
            lambda: daemon.metric("mm_risk_state", market=market) == 2 or None,
            deadline_seconds=5,
            interval_seconds=0.1,
            what="the market halted",
        )
        assert daemon.metric("mm_journal_failed") == 1
        poll(
            lambda: (
                daemon.metric("mm_open_orders", default=0.0, market=market, side="buy")
                + daemon.metric("mm_open_orders", default=0.0, market=market, side="sell")
                == 0
                or None
            ),
            deadline_seconds=5,
            interval_seconds=0.1,
            what="its quotes pulled",
        )
        time.sleep(1.0)
        assert daemon.proc.poll() is None  # alive, serving metrics, alerting
        assert daemon.metric("mm_daemon_running") == 1
        assert daemon.stop() == 0
