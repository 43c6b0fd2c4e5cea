"""The journal on real SQLite files: durability, duplicates, locking, refusals, failure,
retention, and the recovery readers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mm_daemon.core.hedging import HedgeIntent
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import FillMarks, Ledger
from mm_daemon.core.markouts import Markout
from mm_daemon.core.risk import RiskState
from mm_daemon.core.types import (
    CancelRequest,
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from mm_daemon.engine.journal import (
    FillOutcome,
    Journal,
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    JournalSchemaError,
    Snapshot,
    list_runs,
    load_run_series,
)

SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP
S = 1_000_000_000
NO_FLUSH = 3600.0  # the writer thread stays idle: only durable calls and flush() commit
MARKS = FillMarks(60_000 * S, 60_000 * S, hedge=False)


def open_journal(path: Path, **options: object) -> Journal:
    journal = Journal.open(path, **options)  # type: ignore[arg-type]
    journal.register_instrument(SPOT)
    journal.register_instrument(PERP)
    journal.start_run(mode="paper", instance_id="test", config_yaml="mode: paper\n", ts_ns=S)
    return journal


def make_fill(trade_id: str, *, lots: int = 100, client_order_id: str = "q-1", ts: int = 2) -> Fill:
    return Fill(
        venue=SPOT.venue,
        symbol=SPOT.symbol,
        ts_exchange_ns=ts * S,
        ts_local_ns=ts * S,
        client_order_id=client_order_id,
        exchange_order_id="e-" + client_order_id,
        trade_id=trade_id,
        side=Side.BUY,
        price_ticks=5_999_900,
        size_lots=lots,
        fee_quote=0.0,
        liquidity=Liquidity.MAKER,
    )


def order(client_order_id: str = "q-1", lots: int = 500) -> OrderRequest:
    return OrderRequest(SPOT.venue, SPOT.symbol, client_order_id, Side.BUY, 5_999_900, lots)


def update(client_order_id: str, status: OrderStatus, filled: int, ts: int = 3) -> OrderUpdate:
    return OrderUpdate(
        SPOT.venue,
        SPOT.symbol,
        ts * S,
        ts * S,
        client_order_id,
        "e-" + client_order_id,
        status,
        Side.BUY,
        5_999_900,
        500,
        filled,
    )


def snapshot(ts: int, *, market: str = "BTC", peak: float | None = None) -> Snapshot:
    return Snapshot(
        market=market,
        ts_ns=ts * S,
        fair_value=60_000.0 + ts,
        best_bid=59_999.0 + ts,
        best_ask=60_001.0 + ts,
        quote_bid=59_998.0 + ts,
        quote_ask=None,
        position_base=0.001,
        net_exposure_base=0.001,
        pnl_total=1.5,
        pnl_spread_capture=1.0,
        pnl_fees=-0.1,
        pnl_inventory=0.6,
        pnl_hedge_cost=0.0,
        pnl_basis=0.0,
        pnl_funding=0.0,
        drawdown_peak=peak,
        risk_state="ACTIVE",
        paused=False,
    )


def crash_image(path: Path, folder: Path) -> Path:
    """The files as a SIGKILL at this instant would leave them (no process writes meanwhile)."""
    folder.mkdir()
    image = folder / path.name
    for side in ("", "-wal"):
        if Path(f"{path}{side}").exists():
            shutil.copyfile(f"{path}{side}", f"{image}{side}")
    return image


def read_rows(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def digest(path: Path) -> tuple[str | None, ...]:
    return tuple(
        hashlib.sha256(Path(f"{path}{side}").read_bytes()).hexdigest()
        if Path(f"{path}{side}").exists()
        else None
        for side in ("", "-wal")
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
    )


# -- durability and duplicates ---------------------------------------------------------------


def test_a_fill_is_committed_before_record_fill_returns(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=NO_FLUSH)
    assert journal.record_fill("BTC", make_fill("7"), MARKS) is FillOutcome.BOOKED
    image = crash_image(journal.path, tmp_path / "image")
    assert read_rows(image, "SELECT trade_id FROM fills") == [("7",)]
    journal.close()


def test_the_same_trade_id_again_is_refused_as_a_duplicate(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        journal.record_fill("BTC", make_fill("7"), MARKS)
        assert journal.record_fill("BTC", make_fill("7"), MARKS) is FillOutcome.DUPLICATE
        assert read_rows(journal.path, "SELECT count(*) FROM fills") == [(1,)]


def test_the_same_trade_id_on_another_instrument_is_a_new_fill(tmp_path: Path) -> None:
    perp_fill = Fill(PERP.venue, PERP.symbol, S, S, "hdg-1", "e", "7", Side.SELL, 600_000, 1, 0.01,
                     Liquidity.TAKER)  # fmt: skip
    with open_journal(tmp_path / "j.db") as journal:
        journal.record_fill("BTC", make_fill("7"), MARKS)
        assert journal.record_fill("BTC", perp_fill, MARKS) is FillOutcome.BOOKED


def test_a_fill_the_venue_keeps_is_buffered_for_the_writer_not_committed_at_once(
    tmp_path: Path,
) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=NO_FLUSH)
    outcome = journal.record_fill("BTC", make_fill("7"), MARKS, kept_by_venue=True)
    assert outcome is FillOutcome.BUFFERED
    image = crash_image(journal.path, tmp_path / "image")
    assert read_rows(image, "SELECT count(*) FROM fills") == [(0,)]  # a restart reads it back
    journal.close()
    assert read_rows(journal.path, "SELECT trade_id FROM fills") == [("7",)]  # closed: flushed


def test_a_buffered_fill_seen_again_before_its_commit_is_a_duplicate(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=NO_FLUSH)
    journal.record_fill("BTC", make_fill("7"), MARKS, kept_by_venue=True)
    # The stream's copy, then the same trade from a reconnect's trade query, before any commit.
    assert (
        journal.record_fill("BTC", make_fill("7"), MARKS, kept_by_venue=True)
        is FillOutcome.DUPLICATE
    )
    assert journal.record_fill("BTC", make_fill("7"), MARKS, recovered=True) is (
        FillOutcome.DUPLICATE
    )
    journal.close()
    assert read_rows(journal.path, "SELECT count(*) FROM fills") == [(1,)]


def test_a_recovered_fill_is_committed_even_where_the_venue_keeps_fills(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=NO_FLUSH)
    outcome = journal.record_fill("BTC", make_fill("7"), MARKS, recovered=True, kept_by_venue=True)
    assert outcome is FillOutcome.BOOKED
    image = crash_image(journal.path, tmp_path / "image")
    assert read_rows(image, "SELECT trade_id FROM fills") == [("7",)]
    journal.close()


def test_a_durable_record_commits_the_records_buffered_before_it(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=NO_FLUSH)
    journal.record_order("BTC", order("q-1"), 2 * S)
    journal.record_fill("BTC", make_fill("7"), MARKS)
    image = crash_image(journal.path, tmp_path / "image")
    assert read_rows(image, "SELECT client_order_id FROM orders") == [("q-1",)]
    journal.close()


def test_buffered_records_are_lost_to_a_kill_before_the_writer_commits_them(
    tmp_path: Path,
) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=NO_FLUSH)
    journal.record_snapshot(snapshot(2))
    image = crash_image(journal.path, tmp_path / "image")
    assert read_rows(image, "SELECT count(*) FROM snapshots") == [(0,)]
    journal.close()


def test_the_writer_thread_commits_buffered_records_within_its_interval(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=0.05)
    journal.record_snapshot(snapshot(2))
    wait_for(lambda: read_rows(journal.path, "SELECT count(*) FROM snapshots") == [(1,)])
    journal.close()


def test_a_committed_fill_reaches_the_database_file_within_the_flush_interval(
    tmp_path: Path,
) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=0.05)
    journal.record_fill("BTC", make_fill("7"), MARKS)

    def in_the_file_alone() -> bool:  # the WAL checkpointed (and so fsynced) into the file
        conn = sqlite3.connect(f"file:{journal.path}?mode=ro&immutable=1", uri=True)
        try:
            return conn.execute("SELECT trade_id FROM fills").fetchall() == [("7",)]
        except sqlite3.DatabaseError:  # not even the tables are in the file yet
            return False
        finally:
            conn.close()

    wait_for(in_the_file_alone)
    journal.close()


def test_the_observer_is_told_of_each_commit_and_its_records(tmp_path: Path) -> None:
    commits: list[tuple[int, float]] = []

    class Observer:
        def journal_committed(self, records: int, seconds: float) -> None:
            commits.append((records, seconds))

    journal = open_journal(tmp_path / "j.db", flush_interval_s=NO_FLUSH, observer=Observer())
    commits.clear()  # the run's start
    for n in range(3):
        journal.record_order("BTC", order(f"q-{n}"), 2 * S)
    journal.record_fill("BTC", make_fill("7"), MARKS)
    assert [records for records, _ in commits] == [4]
    assert commits[0][1] > 0
    journal.close()


def test_a_fill_returned_booked_survives_a_sigkill_of_the_process(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with subprocess.Popen(
        [sys.executable, "-c", _WRITE_FILLS_FOREVER, str(path)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        printed = [child.stdout.readline().strip() for _ in range(random.randint(50, 150))]
        child.send_signal(signal.SIGKILL)
        printed += [line.strip() for line in child.stdout]  # what it printed before it died
    Journal.open(path).close()  # opens the killed journal as a restart would
    journaled = {str(row[0]) for row in read_rows(path, "SELECT trade_id FROM fills")}
    assert set(printed) <= journaled
    assert len(journaled) <= len(printed) + 1  # at most the one committed but not yet printed


_WRITE_FILLS_FOREVER = """
import sys
from mm_daemon.core.instruments import BTC_USDT_SPOT as SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.types import Fill, Liquidity, Side
from mm_daemon.engine.journal import FillOutcome, Journal
journal = Journal.open(sys.argv[1], flush_interval_s=0.01)
journal.register_instrument(SPOT)
journal.start_run(mode="paper", instance_id="kill", config_yaml="", ts_ns=1)
ledger = Ledger(SPOT)
n = 0
while True:
    n += 1
    fill = Fill(SPOT.venue, SPOT.symbol, n, n, "q-1", "e", str(n), Side.BUY, 6_000_000, 1, 0.0,
                Liquidity.MAKER)
    marks = ledger.entry_marks(fill)
    assert journal.record_fill("BTC", fill, marks) is FillOutcome.BOOKED
    ledger.on_fill(fill, marks)
    state = ledger.export_state(hedge_decisions=False)
    journal.record_checkpoint("BTC", n, ledger=state, risk=None)
    print(n, flush=True)
"""


# -- one process per journal -----------------------------------------------------------------

_TRY_OPEN = """
import sys
from mm_daemon.engine.journal import Journal, JournalError
try:
    Journal.open(sys.argv[1]).close()
except JournalError as exc:
    print(exc)
    sys.exit(2)
print("opened")
"""


def test_a_second_process_on_the_same_journal_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path):
        result = run_python(_TRY_OPEN, str(path))
    assert result.returncode == 2
    assert result.stdout.count("\n") == 1
    assert f"journal {path} is in use by another mm-daemon process (pid {os.getpid()})" in (
        result.stdout
    )


def test_the_journal_opens_again_once_the_first_process_closed_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal.open(path).close()
    result = run_python(_TRY_OPEN, str(path))
    assert (result.returncode, result.stdout) == (0, "opened\n")


def test_the_lock_of_a_killed_process_is_released(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom mm_daemon.engine.journal import Journal\n"
            "j = Journal.open(sys.argv[1])\nprint('ready', flush=True)\nsys.stdin.read()\n",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        with pytest.raises(JournalLockedError):
            Journal.open(path)
        holder.send_signal(signal.SIGKILL)
    Journal.open(path).close()


def test_the_same_process_cannot_open_a_journal_twice(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db"), pytest.raises(JournalLockedError):
        Journal.open(tmp_path / "j.db")


# -- refusals leave the file untouched -------------------------------------------------------


def test_a_journal_of_a_newer_schema_is_refused_in_one_line_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with open_journal(path) as journal:
        journal.record_fill("BTC", make_fill("7"), MARKS)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = version + 1")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(JournalSchemaError) as refused:
        Journal.open(path)
    assert "\n" not in str(refused.value)
    assert str(path) in str(refused.value)
    assert "newer mm-daemon" in str(refused.value)
    assert digest(path) == before


def test_a_file_that_is_not_a_database_is_refused_in_one_line_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(random.Random(5).randbytes(20_000))
    before = digest(path)
    with pytest.raises(JournalCorruptError) as refused:
        Journal.open(path)
    assert "\n" not in str(refused.value)
    assert f"journal {path} is unusable (not an SQLite database)" in str(refused.value)
    assert digest(path) == before


def test_a_damaged_journal_fails_the_integrity_check_and_is_left_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    with open_journal(path) as journal:
        for ts in range(3000):
            journal.record_snapshot(snapshot(ts))
    data = bytearray(path.read_bytes())
    page = 4096
    data[40 * page : 41 * page] = random.Random(1).randbytes(page)
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(JournalCorruptError) as refused:
        Journal.open(path)
    assert "\n" not in str(refused.value)
    assert "--fresh" in str(refused.value)
    assert digest(path) == before


def test_a_newer_schema_still_in_the_wal_is_refused_and_nothing_checkpointed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    Journal.open(path).close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE schema_version SET version = version + 1")
    image = crash_image(path, tmp_path / "image")
    writer.close()
    before = digest(image)
    assert before[1] is not None  # the newer version is only in the WAL
    with pytest.raises(JournalSchemaError):
        Journal.open(image)
    assert digest(image) == before


def test_an_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE things (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalCorruptError, match="an SQLite database but not a journal"):
        Journal.open(path)


def test_a_folder_where_the_journal_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "j.db").mkdir()
    with pytest.raises(JournalCorruptError, match="is not a file"):
        Journal.open(tmp_path / "j.db")


# -- fresh -----------------------------------------------------------------------------------


def test_fresh_keeps_the_old_journal_under_a_timestamped_name(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with open_journal(path) as journal:
        journal.record_fill("BTC", make_fill("7"), MARKS)
    before = digest(path)
    with Journal.open(path, fresh=True) as journal:
        moved = journal.moved_to
        assert journal.recover().markets == {}
    assert moved is not None
    assert moved.parent == tmp_path
    assert moved.name.startswith("j.")
    assert moved.name.endswith(".db")
    assert digest(moved) == before


def test_fresh_twice_in_a_second_keeps_both_old_journals(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal.open(path).close()
    Journal.open(path, fresh=True).close()
    Journal.open(path, fresh=True).close()
    assert len([p for p in tmp_path.iterdir() if p.suffix == ".db"]) == 3


# -- failing writes --------------------------------------------------------------------------


def capped(path: Path, headroom: int, **options: object) -> Journal:
    Journal.open(path).close()
    return open_journal(path, max_bytes=path.stat().st_size + headroom, **options)


def test_a_full_disk_fails_the_journal_and_calls_back_without_raising(tmp_path: Path) -> None:
    reasons: list[str] = []
    journal = capped(tmp_path / "j.db", 16_384, flush_interval_s=0.01, on_failure=reasons.append)
    for n in range(2_000):
        journal.record_snapshot(snapshot(n))
    wait_for(lambda: journal.failed_reason is not None)
    assert reasons == [journal.failed_reason]
    assert "database or disk is full" in reasons[0]
    journal.close()


def test_a_fill_on_a_failed_journal_is_unjournaled_and_counts(tmp_path: Path) -> None:
    reasons: list[str] = []
    journal = capped(tmp_path / "j.db", 8_192, on_failure=reasons.append)
    outcomes = [journal.record_fill("BTC", make_fill(str(n)), MARKS) for n in range(400)]
    first_failed = outcomes.index(FillOutcome.UNJOURNALED)
    assert set(outcomes[:first_failed]) == {FillOutcome.BOOKED}
    assert set(outcomes[first_failed:]) == {FillOutcome.UNJOURNALED}
    assert len(reasons) == 1
    journal.close()


def test_a_failed_journal_still_refuses_a_trade_id_it_has_seen(tmp_path: Path) -> None:
    journal = capped(tmp_path / "j.db", 8_192)
    outcomes = [journal.record_fill("BTC", make_fill(str(n)), MARKS) for n in range(400)]
    assert FillOutcome.UNJOURNALED in outcomes
    assert journal.record_fill("BTC", make_fill("0"), MARKS) is FillOutcome.DUPLICATE
    assert journal.record_fill("BTC", make_fill("399"), MARKS) is FillOutcome.DUPLICATE
    journal.close()


def test_a_failed_journal_drops_buffered_records_and_counts_them(tmp_path: Path) -> None:
    journal = capped(tmp_path / "j.db", 8_192)
    while journal.failed_reason is None:
        journal.record_fill("BTC", make_fill(str(journal.pending) + str(time.time_ns())), MARKS)
    journal.record_snapshot(snapshot(1))
    journal.record_order("BTC", order(), S)
    assert journal.dropped_records == 2
    journal.close()


# -- retention -------------------------------------------------------------------------------


def test_retention_prunes_snapshots_older_than_its_window(tmp_path: Path) -> None:
    now = [100 * S]
    journal = open_journal(tmp_path / "j.db", retention_s=30, clock=lambda: now[0])
    for ts in range(100):
        journal.record_snapshot(snapshot(ts))
    journal.flush()
    journal.prune()
    assert [s.ts_ns // S for s in load_run_series(journal.path).snapshots] == list(range(70, 100))
    journal.close()


def test_retention_keeps_the_history_of_orders_still_open(tmp_path: Path) -> None:
    now = [100 * S]
    journal = open_journal(tmp_path / "j.db", retention_s=30, clock=lambda: now[0])
    journal.record_order("BTC", order("q-open"), 2 * S)
    journal.record_order("BTC", order("q-done"), 2 * S)
    journal.record_order_update("BTC", update("q-done", OrderStatus.CANCELLED, 0))
    journal.flush()
    journal.prune()
    rows = read_rows(journal.path, "SELECT DISTINCT client_order_id FROM orders")
    assert rows == [("q-open",)]
    assert [o.client_order_id for o in journal.recover().open_orders] == ["q-open"]
    journal.close()


def test_retention_keeps_the_latest_checkpoint_of_each_market(tmp_path: Path) -> None:
    now = [100 * S]
    journal = open_journal(tmp_path / "j.db", retention_s=30, clock=lambda: now[0])
    risk = {"state": "ACTIVE", "halted_reason": "", "peak_pnl_quote": 1.0}
    journal.record_checkpoint("BTC", 1 * S, ledger=None, risk=risk)
    journal.record_checkpoint("BTC", 2 * S, ledger=None, risk=risk)
    journal.record_checkpoint("ETH", 1 * S, ledger=None, risk=risk)
    journal.flush()
    journal.prune()
    assert read_rows(journal.path, "SELECT market, ts_ns FROM checkpoints ORDER BY market") == [
        ("BTC", 2 * S),
        ("ETH", 1 * S),
    ]
    journal.close()


# -- risk latch and drawdown peak ------------------------------------------------------------


def test_a_halt_is_durable_and_recovered_as_a_latch(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.db", flush_interval_s=NO_FLUSH)
    journal.record_risk_state(
        "BTC", RiskState.HALTED, reason="drawdown 120 beyond 100", source="drawdown", ts_ns=S
    )
    image = crash_image(journal.path, tmp_path / "image")
    journal.close()
    with Journal.open(image) as restarted:
        risk = restarted.recover().market("BTC").risk
    assert risk is not None
    assert (risk["state"], risk["halted_reason"]) == ("HALTED", "drawdown 120 beyond 100")


def test_an_operator_reset_clears_the_latch_and_the_peak(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        risk = {"state": "ACTIVE", "halted_reason": "", "peak_pnl_quote": 9.0}
        journal.record_checkpoint("BTC", S, ledger=None, risk=risk)
        journal.record_risk_state(
            "BTC", RiskState.HALTED, reason="kill", source="operator", ts_ns=S
        )
        journal.record_risk_state(
            "BTC", RiskState.ACTIVE, reason="reset", source="operator", ts_ns=S
        )
        risk = journal.recover().market("BTC").risk
    assert risk == {"state": "ACTIVE", "halted_reason": "", "peak_pnl_quote": None}


def test_a_portfolio_halt_is_recovered_apart_from_the_markets(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        journal.record_risk_state(None, RiskState.HALTED, reason="portfolio drawdown",
                                  source="portfolio", ts_ns=S)  # fmt: skip
        recovery = journal.recover()
    assert recovery.portfolio_risk is not None
    assert recovery.portfolio_risk["state"] == "HALTED"
    assert recovery.market("BTC").risk is None


def test_the_drawdown_peak_comes_from_the_latest_snapshot_after_the_checkpoint(
    tmp_path: Path,
) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        risk = {"state": "ACTIVE", "halted_reason": "", "peak_pnl_quote": 3.0}
        journal.record_checkpoint("BTC", S, ledger=None, risk=risk)
        journal.record_snapshot(snapshot(2, peak=4.5))
        journal.record_snapshot(snapshot(3, peak=5.25))
        journal.flush()
        risk = journal.recover().market("BTC").risk
    assert risk is not None
    assert risk["peak_pnl_quote"] == 5.25


# -- other recovery readers ------------------------------------------------------------------


def test_the_last_trade_is_the_highest_numeric_trade_id_per_instrument(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        for trade_id in ("9", "12", "10"):
            journal.record_fill("BTC", make_fill(trade_id, ts=int(trade_id)), MARKS)
        marks = journal.recover().last_trades
    assert marks[(SPOT.venue, SPOT.symbol)].trade_id == "12"
    assert marks[(SPOT.venue, SPOT.symbol)].ts_exchange_ns == 12 * S


def test_an_open_paper_order_is_recovered_with_its_fills(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        journal.record_order("BTC", order("q-1", lots=500), 2 * S)
        journal.record_order_update("BTC", update("q-1", OrderStatus.OPEN, 0))
        journal.record_fill("BTC", make_fill("7", lots=120), MARKS)
        (recovered,) = journal.recover().open_orders
    assert (recovered.client_order_id, recovered.mode) == ("q-1", "paper")
    assert (recovered.price_ticks, recovered.size_lots, recovered.filled_lots) == (
        5_999_900,
        500,
        120,
    )
    assert recovered.status is OrderStatus.PARTIALLY_FILLED


def test_an_order_whose_fills_cover_its_size_is_not_open(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        journal.record_order("BTC", order("q-1", lots=100), 2 * S)
        journal.record_fill("BTC", make_fill("7", lots=100), MARKS)
        assert journal.recover().open_orders == ()


def test_a_cancelled_order_is_not_open(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        journal.record_order("BTC", order("q-1"), 2 * S)
        journal.record_cancel("BTC", CancelRequest(SPOT.venue, SPOT.symbol, "q-1"), 3 * S)
        journal.record_order_update("BTC", update("q-1", OrderStatus.CANCELLED, 0, ts=4))
        journal.flush()
        assert journal.recover().open_orders == ()


def test_hedge_decisions_are_recovered_in_the_order_they_were_made(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        for n in range(3):
            request = OrderRequest(PERP.venue, PERP.symbol, f"hdg-{n}", Side.SELL, 600_000, 1)
            journal.record_hedge_decision(
                "BTC", HedgeIntent(request, 60_000.0 + n, 59_990.0, -0.001), S
            )
        decisions = journal.recover().market("BTC").hedge_decisions
    assert [d.client_order_id for d in decisions] == ["hdg-0", "hdg-1", "hdg-2"]
    assert decisions[2].fair_value == 60_002.0


def test_a_funding_payment_is_booked_once(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        payment = {
            "venue": PERP.venue,
            "symbol": PERP.symbol,
            "funding_time_ns": 8 * 3600 * S,
            "amount": -0.42,
            "asset": "USDT",
            "rate": 0.0001,
            "position_base": 0.07,
        }
        assert journal.record_funding("BTC", **payment) is True  # type: ignore[arg-type]
        assert journal.record_funding("BTC", **payment) is False  # type: ignore[arg-type]


def test_ledger_recovered_from_checkpoint_and_later_fills_equals_the_original(
    tmp_path: Path,
) -> None:
    ledger = Ledger(SPOT)
    ledger.on_fair_value(SPOT.venue, SPOT.symbol, 60_000.25)
    with open_journal(tmp_path / "j.db") as journal:
        for n in range(6):
            fill = make_fill(str(n), lots=50 + n)
            marks = ledger.entry_marks(fill)
            journal.record_fill("BTC", fill, marks)
            ledger.on_fill(fill, marks)
            if n == 2:
                state = ledger.export_state(hedge_decisions=False)
                journal.record_checkpoint("BTC", n * S, ledger=state, risk=None)
            ledger.on_fair_value(SPOT.venue, SPOT.symbol, 60_000.25 + n)
        recovered = journal.recover().market("BTC")
    restored = Ledger(SPOT)
    assert recovered.restore_ledger(restored) == 3
    restored.on_fair_value(SPOT.venue, SPOT.symbol, 60_005.25)  # the market's, after a restart
    assert restored.pnl() == ledger.pnl()


# -- runs and report series ------------------------------------------------------------------


def test_a_run_left_open_by_a_kill_is_closed_as_unclean_by_the_next(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = open_journal(path, flush_interval_s=NO_FLUSH)
    journal.record_fill("BTC", make_fill("7", ts=5), MARKS)
    image = crash_image(path, tmp_path / "image")
    journal.close()
    with open_journal(image):
        pass
    first, second = list_runs(image)
    assert (first.end_reason, first.ended_ns) == ("unclean", 5 * S)
    assert second.ended_ns is None


def test_end_run_keeps_the_reason_and_summary(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        journal.end_run(reason="sigterm", summary={"fills": 3}, ts_ns=9 * S)
    (run,) = list_runs(tmp_path / "j.db")
    assert (run.end_reason, run.ended_ns, run.summary) == ("sigterm", 9 * S, {"fills": 3})
    assert run.config_yaml == "mode: paper\n"


def test_run_series_holds_one_runs_records_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with open_journal(path) as journal:
        journal.record_snapshot(snapshot(3))
        journal.record_snapshot(snapshot(2))
        journal.record_fill("BTC", make_fill("1", ts=2), MARKS)
        journal.record_control("pause", caller="127.0.0.1", result="ok", detail="", ts_ns=2 * S)
        journal.end_run(reason="done", summary=None, ts_ns=4 * S)
    with open_journal(path) as journal:
        journal.record_snapshot(snapshot(10))
        journal.end_run(reason="done", summary=None, ts_ns=11 * S)
    series = load_run_series(path, 1)
    assert [s.ts_ns // S for s in series.snapshots] == [2, 3]
    assert [f.fill.trade_id for f in series.fills] == ["1"]
    assert [a.action for a in series.control_actions] == ["pause"]
    assert load_run_series(path).runs[0].run_id == 2


def test_run_series_of_a_time_range_spans_runs(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    for ts in (2, 10):
        with open_journal(path) as journal:
            journal.record_snapshot(snapshot(ts))
            journal.end_run(reason="done", summary=None, ts_ns=(ts + 1) * S)
    series = load_run_series(path, start_ns=0, end_ns=20 * S)
    assert [r.run_id for r in series.runs] == [1, 2]
    assert [s.ts_ns // S for s in series.snapshots] == [2, 10]


def test_run_series_holds_the_markouts_of_its_fills_with_the_pause_reasons(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    with open_journal(path) as journal:
        journal.record_markout("BTC/USDT@sim-spot", Markout("1s", -0.75, 2 * S, Side.SELL), 3 * S)
        journal.record_markout("BTC/USDT@sim-spot", Markout("5s", 1.25, 2 * S, Side.SELL), 7 * S)
        journal.record_snapshot(dataclasses.replace(snapshot(3), paused=True, pause_reason="stale"))
        journal.end_run(reason="done", summary=None, ts_ns=8 * S)
    series = load_run_series(path, 1)
    assert [(m.horizon, m.bps, m.fill_ts_ns, m.side) for m in series.markouts] == [
        ("1s", -0.75, 2 * S, Side.SELL),
        ("5s", 1.25, 2 * S, Side.SELL),
    ]
    assert [(s.paused, s.pause_reason) for s in series.snapshots] == [(True, "stale")]


def test_a_journal_from_before_the_schema_settled_is_refused_in_one_line_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    with open_journal(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE markouts")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(JournalSchemaError) as refused:
        Journal.open(path)
    assert "\n" not in str(refused.value)
    assert "--fresh" in str(refused.value)
    assert digest(path) == before


def test_an_unknown_run_is_a_one_line_error(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db"):
        pass
    with pytest.raises(JournalError, match=r"has no run 7: list its runs"):
        load_run_series(tmp_path / "j.db", 7)


def test_checkpoint_state_is_stored_as_json_with_exact_integers(tmp_path: Path) -> None:
    ledger = Ledger(SPOT)
    fill = make_fill("1", lots=12_345)
    ledger.on_fill(fill, ledger.entry_marks(fill))
    state = ledger.export_state(hedge_decisions=False)
    with open_journal(tmp_path / "j.db") as journal:
        journal.record_checkpoint("BTC", S, ledger=state, risk=None)
    (stored,) = read_rows(tmp_path / "j.db", "SELECT ledger_json FROM checkpoints")
    assert json.loads(str(stored[0])) == state
