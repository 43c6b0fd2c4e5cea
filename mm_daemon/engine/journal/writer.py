"""The journal's records: what the daemon writes, and when each becomes durable.

See the package docstring for the design. All `record_*` calls come from one thread (the
event loop's); the writer thread only drains what they buffered.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_daemon.core.risk import RiskState
from mm_daemon.core.types import (
    CancelRequest,
    Fill,
    Instrument,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from mm_daemon.engine.journal import schema
from mm_daemon.engine.journal.errors import JournalError
from mm_daemon.engine.journal.records import FillOutcome, JournalObserver, Snapshot
from mm_daemon.engine.journal.recovery import Recovery, read_recovery
from mm_daemon.engine.journal.store import JournalStore

if TYPE_CHECKING:
    from mm_daemon.core.hedging import HedgeIntent
    from mm_daemon.core.inventory import FillMarks
    from mm_daemon.core.markouts import Markout

__all__ = ["Journal"]


_RECENT_TRADES_KEPT = 65_536  # far more fills than arrive between a fill and a duplicate of it


class Journal:
    """An open journal: `Journal.open(path)`, `start_run(...)`, `record_*`, `close()`."""

    def __init__(self, store: JournalStore) -> None:
        self._store = store
        self.run_id: int | None = None
        self._seq = store.max_seq
        self._instruments: dict[tuple[str, str], Instrument] = {}
        # The trade ids booked lately, committed or not: a fill still waiting in the buffer is
        # booked too, and a duplicate of it (a reconnect's trade query) must not count again.
        self._recent_trades: dict[tuple[str, str, str], None] = {}

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        fresh: bool = False,
        retention_s: float | None = 7 * 86_400.0,
        flush_interval_s: float = 0.25,
        max_bytes: int | None = None,
        integrity_check: bool = True,
        observer: JournalObserver | None = None,
        on_failure: Callable[[str], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
        fsync_each_commit: bool = False,
    ) -> Journal:
        """Lock, check and open the journal at `path` (created when absent).

        `fresh` first moves an existing journal (and its -wal and -shm) to a timestamped name
        beside it (`moved_to`); nothing is ever deleted. `retention_s` bounds the age of
        snapshots, finished orders' history and superseded checkpoints (None keeps all).
        `max_bytes` caps the file: a write past it fails as a full disk would. `on_failure`
        is called once, with the reason, when a write fails (from the writer thread when the
        write was a buffered one). `integrity_check` runs SQLite's quick_check on an existing
        file first. `fsync_each_commit` makes each durable record survive a power cut before
        its call returns, not within a flush interval (the call then waits for the disk).
        Raises a JournalError, with the file left as it was, when the journal is locked by
        another process, unreadable, corrupt or of a newer schema.
        """
        return cls(
            JournalStore.open(
                Path(path),
                fresh=fresh,
                retention_s=retention_s,
                flush_interval_s=flush_interval_s,
                max_bytes=max_bytes,
                integrity_check=integrity_check,
                observer=observer,
                on_failure=on_failure,
                clock=clock,
                fsync_each_commit=fsync_each_commit,
            )
        )

    # -- state -------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def moved_to(self) -> Path | None:
        """Where `fresh` moved the previous journal (None: there was none, or not fresh)."""
        return self._store.moved_to

    @property
    def failed_reason(self) -> str | None:
        """Why the journal stopped writing (it stays failed until the process restarts)."""
        return self._store.failed_reason

    @property
    def pending(self) -> int:
        """Buffered records the writer thread has not committed yet."""
        return self._store.pending

    @property
    def dropped_records(self) -> int:
        """Buffered records lost to a failure."""
        return self._store.dropped_records

    def flush(self) -> bool:
        """Commit everything buffered now, on the caller's thread; False when failed."""
        return self._store.flush()

    def prune(self) -> int:
        """Apply the retention now (the writer thread does it every minute)."""
        return self._store.prune()

    def close(self) -> None:
        """Commit what is buffered, stop the writer, close the file and release the lock."""
        self._store.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_instrument(self, instrument: Instrument) -> None:
        """An instrument this run trades: journaled with the run (its tick and lot convert the
        orders' ticks and lots); its fills are journaled with float prices and sizes too."""
        self._instruments[(instrument.venue, instrument.symbol)] = instrument
        if self.run_id is not None:
            self._store.buffer("instruments", _instrument_row(self.run_id, instrument))

    def recover(self, *, hedge_decisions_kept: int = 4096) -> Recovery:
        """Everything a restart needs, read from what is committed (see `recovery`)."""
        return self._store.read(
            lambda conn: read_recovery(conn, hedge_decisions_kept=hedge_decisions_kept)
        )

    def start_run(self, *, mode: str, instance_id: str, config_yaml: str, ts_ns: int) -> int:
        """Open a run (durable); runs left open by a kill are closed as "unclean" first."""

        def write(conn: sqlite3.Connection) -> int | None:
            conn.execute(
                "UPDATE runs SET end_reason = 'unclean', ended_ns = max(started_ns, "
                "coalesce((SELECT max(ts_ns) FROM snapshots AS s "
                "WHERE s.ts_ns >= runs.started_ns AND s.run_id = runs.run_id), 0), "
                "coalesce((SELECT max(ts_local_ns) FROM fills AS f "
                "WHERE f.run_id = runs.run_id), 0)) WHERE ended_ns IS NULL"
            )
            run_id = conn.execute(
                "INSERT INTO runs (instance_id, mode, started_ns, config_yaml) VALUES (?, ?, ?, ?)",
                (instance_id, mode, ts_ns, config_yaml),
            ).lastrowid
            conn.executemany(
                schema.INSERT["instruments"],
                [_instrument_row(run_id or 0, inst) for inst in self._instruments.values()],
            )
            return run_id

        run_id = self._store.commit_now(write)
        if not isinstance(run_id, int):
            raise JournalError(
                f"journal {self.path} cannot start a run ({self.failed_reason}): free space "
                "or fix the folder, then start again"
            )
        self.run_id = run_id
        return run_id

    def end_run(self, *, reason: str, summary: Mapping[str, Any] | None, ts_ns: int) -> None:
        """Close the run (durable), after committing everything buffered."""
        summary_json = None if summary is None else json.dumps(summary, sort_keys=True)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET ended_ns = ?, end_reason = ?, summary_json = ? WHERE run_id = ?",
                (ts_ns, reason, summary_json, self._run()),
            )

        self._store.commit_now(write)

    def record_fill(
        self,
        market: str,
        fill: Fill,
        marks: FillMarks,
        *,
        recovered: bool = False,
        kept_by_venue: bool = False,
    ) -> FillOutcome:
        """Commit a fill (and everything buffered before it) before the caller counts it.

        DUPLICATE: the venue, symbol and trade id are journaled already; the caller must not
        count it again. `marks` are the ledger's `entry_marks(fill)`, kept so a restart books
        the fill exactly as it was booked. The instrument must be registered.

        `kept_by_venue`: the venue's trade history holds this fill and a restart reads back
        whatever the journal lacks (live), so it is buffered for the writer thread instead of
        committed here (BUFFERED). A synchronous commit measured p50 0.95 ms on the fill path,
        between the fill and the requote it causes (`bench/bench_reaction.py`, filling).
        """
        instrument = self._instruments[(fill.venue, fill.symbol)]
        trade_key = (fill.venue, fill.symbol, fill.trade_id)
        recent = self._recent_trades
        if trade_key in recent:
            return FillOutcome.DUPLICATE
        recent[trade_key] = None
        if len(recent) > _RECENT_TRADES_KEPT:
            del recent[next(iter(recent))]
        params = (
            self._next_seq(),
            self._run(),
            market,
            fill.venue,
            fill.symbol,
            fill.trade_id,
            int(fill.trade_id) if fill.trade_id.isdigit() else None,  # Binance's count up
            fill.client_order_id,
            fill.exchange_order_id,
            int(fill.side),
            fill.price_ticks,
            fill.size_lots,
            instrument.ticks_to_price(fill.price_ticks),
            instrument.lots_to_size(fill.size_lots),
            fill.fee_quote,
            instrument.quote,
            fill.liquidity.value,
            int(marks.hedge),
            str(marks.entry_nanos),
            str(marks.entry_reference_nanos),
            int(recovered),
            fill.ts_exchange_ns,
            fill.ts_local_ns,
        )
        if kept_by_venue and not recovered:
            # Ignored by the table's unique key if a trade query books it first.
            self._store.buffer("fills", params)
            return FillOutcome.BUFFERED
        inserted = self._store.commit_now(
            lambda conn: conn.execute(schema.INSERT["fills"], params).rowcount
        )
        if inserted is None:  # the journal has failed; a repeat this run is caught above
            return FillOutcome.DUPLICATE if self._journaled(trade_key) else FillOutcome.UNJOURNALED
        return FillOutcome.BOOKED if inserted else FillOutcome.DUPLICATE

    def record_hedge_decision(self, market: str, intent: HedgeIntent, ts_ns: int) -> None:
        """Commit a hedge decision before its order is sent (its fill is measured from it)."""
        request = intent.request
        params = (
            self._next_seq(),
            self._run(),
            market,
            ts_ns,
            "decision",
            request.venue,
            request.symbol,
            request.client_order_id,
            int(request.side),
            request.size_lots,
            request.price_ticks,
            intent.fair_value,
            intent.reference_fair_value,
            intent.exposure_change_base,
            None,
            None,
            None,
            None,
            "",
        )
        self._store.commit_now(lambda conn: conn.execute(schema.INSERT["hedges"], params))

    def record_risk_state(
        self, market: str | None, state: RiskState, *, reason: str, source: str, ts_ns: int
    ) -> None:
        """A risk state change of a market (None: portfolio-wide).

        A halt, and any change an operator makes (source "operator": a reset out of HALTED is
        recorded as the new state with that source), commit before the call returns; the
        ACTIVE/REDUCING changes of the inventory limit are buffered.
        """
        params = (self._next_seq(), self._run(), market, ts_ns, state.name, reason, source)
        if state is RiskState.HALTED or source == "operator":
            self._store.commit_now(lambda conn: conn.execute(schema.INSERT["risk_states"], params))
        else:
            self._store.buffer("risk_states", params)

    def record_control(
        self, action: str, *, caller: str, result: str, detail: str, ts_ns: int
    ) -> None:
        """An operator's control action (committed before the call returns)."""
        params = (self._next_seq(), self._run(), ts_ns, action, caller, result, detail)
        self._store.commit_now(lambda conn: conn.execute(schema.INSERT["control_actions"], params))

    def record_funding(
        self,
        market: str,
        *,
        venue: str,
        symbol: str,
        funding_time_ns: int,
        amount: float,
        asset: str,
        rate: float | None,
        position_base: float | None,
    ) -> bool:
        """Commit a funding payment; False when that venue, symbol and time is journaled
        already (do not count it again)."""
        params = (
            self._next_seq(),
            self._run(),
            market,
            venue,
            symbol,
            funding_time_ns,
            amount,
            asset,
            rate,
            position_base,
        )
        inserted = self._store.commit_now(
            lambda conn: conn.execute(schema.INSERT["funding"], params).rowcount
        )
        return inserted is None or bool(inserted)

    def record_order(
        self, market: str, request: OrderRequest, ts_ns: int, *, action: str = "new"
    ) -> None:
        """An order sent (action "new" or "replace"), or one carried over ("adopt")."""
        # Enums go in as they are: sqlite3 stores an IntEnum as its integer, a StrEnum as text.
        self._store.buffer(
            "orders",
            (
                self._next_seq(),
                self._run(),
                market,
                ts_ns,
                action,
                request.venue,
                request.symbol,
                request.client_order_id,
                None,
                request.side,
                request.order_type,
                request.price_ticks,
                request.size_lots,
                None,
                OrderStatus.PENDING_NEW,
                "",
            ),
        )

    def record_cancel(
        self, market: str, cancel: CancelRequest, ts_ns: int, *, reason: str = ""
    ) -> None:
        """A cancel sent (the order's state stays as it was until the venue confirms)."""
        self._store.buffer(
            "orders",
            (
                self._next_seq(),
                self._run(),
                market,
                ts_ns,
                "cancel",
                cancel.venue,
                cancel.symbol,
                cancel.client_order_id,
                None,
                None,
                None,
                None,
                None,
                None,
                OrderStatus.PENDING_CANCEL,
                reason,
            ),
        )

    def record_order_update(self, market: str, update: OrderUpdate) -> None:
        """A status change reported by the venue (or the paper venue)."""
        self._store.buffer(
            "orders",
            (
                self._next_seq(),
                self._run(),
                market,
                update.ts_local_ns,
                "update",
                update.venue,
                update.symbol,
                update.client_order_id,
                update.exchange_order_id or None,
                update.side,
                None,
                update.price_ticks,
                update.size_lots,
                update.filled_lots,
                update.status,
                update.reason,
            ),
        )

    def record_hedge_outcome(
        self,
        market: str,
        *,
        venue: str,
        symbol: str,
        client_order_id: str,
        status: str,
        filled_lots: int,
        avg_price: float | None,
        slippage_bps: float | None,
        reason: str,
        ts_ns: int,
    ) -> None:
        """How a hedge order ended (filled, partly filled, rejected, timed out)."""
        self._store.buffer(
            "hedges",
            (
                self._next_seq(),
                self._run(),
                market,
                ts_ns,
                "outcome",
                venue,
                symbol,
                client_order_id,
                None,
                None,
                None,
                None,
                None,
                None,
                status,
                filled_lots,
                avg_price,
                slippage_bps,
                reason,
            ),
        )

    def record_checkpoint(
        self,
        market: str | None,
        ts_ns: int,
        *,
        ledger: Mapping[str, Any] | None,
        risk: Mapping[str, Any] | None,
    ) -> None:
        """The ledger and risk state of a market (None: portfolio-wide) as of now.

        `ledger` is `Ledger.export_state(hedge_decisions=False)` (the decisions are records of
        their own); it counts every fill recorded before this call. Buffered: losing the
        latest checkpoint to a kill only means replaying more fills.
        """
        self._store.buffer(
            "checkpoints",
            (
                self._next_seq(),
                self._run(),
                market,
                ts_ns,
                None if ledger is None else json.dumps(ledger, separators=(",", ":")),
                None if risk is None else json.dumps(risk, separators=(",", ":")),
            ),
        )

    def record_baseline(
        self, venue: str, symbol: str, *, lots: int, last_trade_id: str, ts_ns: int
    ) -> None:
        """The account's holding of an instrument the first time this journal trades it
        (durable; kept once: a later call for the same instrument changes nothing)."""
        params = (venue, symbol, self._run(), ts_ns, lots, last_trade_id)
        self._store.commit_now(lambda conn: conn.execute(schema.INSERT["baselines"], params))

    def record_snapshot(self, snapshot: Snapshot) -> None:
        """One market's 1 s snapshot (buffered)."""
        s = snapshot
        self._store.buffer(
            "snapshots",
            (
                self._next_seq(),
                self._run(),
                s.market,
                s.ts_ns,
                s.fair_value,
                s.best_bid,
                s.best_ask,
                s.quote_bid,
                s.quote_ask,
                s.position_base,
                s.net_exposure_base,
                s.pnl_total,
                s.pnl_spread_capture,
                s.pnl_fees,
                s.pnl_inventory,
                s.pnl_hedge_cost,
                s.pnl_basis,
                s.pnl_funding,
                s.drawdown_peak,
                s.risk_state,
                int(s.paused),
                s.pause_reason,
            ),
        )

    def record_markout(self, market: str, markout: Markout, ts_ns: int) -> None:
        """A maker fill's markout, completed at `ts_ns` (buffered): the run reports' markouts
        are exactly those the run summary averages."""
        self._store.buffer(
            "markouts",
            (
                self._next_seq(),
                self._run(),
                market,
                ts_ns,
                markout.fill_ts_ns,
                int(markout.side),
                markout.horizon,
                markout.bps,
            ),
        )

    def _run(self) -> int:
        if self.run_id is None:
            raise RuntimeError("Journal.start_run must come before any record")
        return self.run_id

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _journaled(self, trade_key: tuple[str, str, str]) -> bool:
        try:
            row = self._store.read(
                lambda conn: conn.execute(
                    "SELECT 1 FROM fills WHERE venue = ? AND symbol = ? AND trade_id = ?",
                    trade_key,
                ).fetchone()
            )
        except sqlite3.Error:
            return False
        return row is not None


def _instrument_row(run_id: int, instrument: Instrument) -> tuple[Any, ...]:
    return (
        run_id,
        instrument.venue,
        instrument.symbol,
        instrument.exchange_symbol,
        instrument.kind,
        instrument.base,
        instrument.quote,
        instrument.tick_size,
        instrument.lot_size,
        instrument.contract_size_base,
    )
