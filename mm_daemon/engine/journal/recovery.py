"""Reading a journal back: what a restart restores, and the series a run report plots.

`Journal.recover()` reads, from what is committed:
- per market: the latest checkpoint, the fills journaled after it (to be booked again with
  their journaled entry marks), the latest hedge decisions (the ledger's memory of them), and
  the risk state (a HALTED latch survives; an operator's reset clears it and the peak);
- portfolio-wide: the risk state;
- per venue and symbol: the latest journaled trade (where `trades_since` starts);
- orders not known to be finished, with their last state (paper orders are restored from
  these; live ones are the venue's to report).

`MarketRecovery.restore_ledger` puts a market's ledger back exactly where it was.
`load_run_series` and `list_runs` read a journal file read-only (also while its daemon runs).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_daemon.core.inventory import FillMarks
from mm_daemon.core.types import Fill, Liquidity, OrderStatus, OrderType, Side
from mm_daemon.engine.journal import schema
from mm_daemon.engine.journal.errors import JournalCorruptError, JournalError
from mm_daemon.engine.journal.records import (
    Baseline,
    Checkpoint,
    ControlAction,
    FundingPayment,
    HedgeDecision,
    HedgeOutcome,
    InstrumentInfo,
    JournaledFill,
    OpenOrder,
    RiskChange,
    RunInfo,
    Snapshot,
    TradeMark,
)

if TYPE_CHECKING:
    from mm_daemon.core.inventory import Ledger

__all__ = [
    "MarketRecovery",
    "Recovery",
    "RunSeries",
    "list_runs",
    "load_run_series",
    "read_recovery",
]

_FILL_COLUMNS = (
    "seq, run_id, market, venue, symbol, ts_exchange_ns, ts_local_ns, client_order_id, "
    "exchange_order_id, trade_id, side, price_ticks, size_lots, fee, liquidity, "
    "entry_nanos, entry_reference_nanos, is_hedge, price, size, fee_asset, recovered"
)
_DECISION_COLUMNS = (
    "seq, run_id, market, ts_ns, venue, symbol, client_order_id, side, size_lots, price_ticks, "
    "fair_value, reference_fair_value, exposure_change_base"
)
_OUTCOME_COLUMNS = (
    "seq, run_id, market, ts_ns, venue, symbol, client_order_id, status, filled_lots, "
    "avg_price, slippage_bps, reason"
)
_SNAPSHOT_COLUMNS = ", ".join(field.name for field in fields(Snapshot))
_RUN_COLUMNS = (
    "run_id, instance_id, mode, started_ns, ended_ns, end_reason, config_yaml, summary_json"
)


@dataclass(frozen=True, slots=True)
class MarketRecovery:
    market: str
    checkpoint: Checkpoint | None
    fills: tuple[JournaledFill, ...]  # journaled after the checkpoint, in journal order
    hedge_decisions: tuple[HedgeDecision, ...]  # the latest ones, in journal order
    risk: dict[str, Any] | None  # for RiskGate.restore_state; None: nothing journaled
    funding: tuple[FundingPayment, ...] = ()  # journaled after the checkpoint

    def restore_ledger(self, ledger: Ledger) -> int:
        """Put `ledger` back where the journal left it; return the fills booked again.

        The ledger must be new (or fresh from `restore_state`) with this market's instruments
        registered; ValueError when the checkpoint does not fit it (see `Ledger.restore_state`).
        Fair values are the checkpoint's until the market gives new ones.
        """
        if self.checkpoint is not None and self.checkpoint.ledger is not None:
            ledger.restore_state(self.checkpoint.ledger)
        for decision in self.hedge_decisions:
            ledger.on_hedge_decision(
                decision.client_order_id, decision.fair_value, decision.reference_fair_value
            )
        for journaled in self.fills:
            ledger.on_fill(journaled.fill, journaled.marks)
        for payment in self.funding:
            ledger.on_funding(payment.venue, payment.symbol, payment.amount)
        return len(self.fills)


@dataclass(frozen=True, slots=True)
class Recovery:
    markets: dict[str, MarketRecovery]
    portfolio_risk: dict[str, Any] | None
    last_trades: dict[tuple[str, str], TradeMark]
    open_orders: tuple[OpenOrder, ...]
    last_run: RunInfo | None  # read before start_run: the run before this one
    baselines: dict[tuple[str, str], Baseline]
    last_funding_ns: dict[tuple[str, str], int] = field(default_factory=dict)
    """The latest journaled funding time per venue and symbol (later ones are still to book)."""

    def market(self, name: str) -> MarketRecovery:
        """The recovery of `name`; an empty one for a market the journal has never seen."""
        found = self.markets.get(name)
        if found is None:
            return MarketRecovery(name, None, (), (), None)
        return found


@dataclass(frozen=True, slots=True)
class RunSeries:
    """What a run report plots: the records of one run, or of a time range, in time order."""

    runs: tuple[RunInfo, ...]
    start_ns: int
    end_ns: int
    instruments: tuple[InstrumentInfo, ...]  # of the runs
    snapshots: tuple[Snapshot, ...]
    fills: tuple[JournaledFill, ...]
    hedge_decisions: tuple[HedgeDecision, ...]
    hedge_outcomes: tuple[HedgeOutcome, ...]
    risk_changes: tuple[RiskChange, ...]
    control_actions: tuple[ControlAction, ...]
    funding: tuple[FundingPayment, ...]


# -- recovery ----------------------------------------------------------------------------------


def read_recovery(conn: sqlite3.Connection, *, hedge_decisions_kept: int = 4096) -> Recovery:
    markets = sorted(
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT market FROM fills UNION SELECT DISTINCT market FROM hedges "
            "UNION SELECT market FROM checkpoints WHERE market IS NOT NULL "
            "UNION SELECT DISTINCT market FROM funding "
            "UNION SELECT market FROM risk_states WHERE market IS NOT NULL"
        )
    )
    recovered = {market: _market_recovery(conn, market, hedge_decisions_kept) for market in markets}
    runs = _runs(conn, "ORDER BY run_id DESC LIMIT 1", ())
    return Recovery(
        markets=recovered,
        portfolio_risk=_risk(conn, None, _latest_checkpoint(conn, None)),
        last_trades=_last_trades(conn),
        open_orders=_open_orders(conn),
        last_run=runs[0] if runs else None,
        baselines={
            (row[0], row[1]): Baseline(*row)
            for row in conn.execute(
                "SELECT venue, symbol, run_id, ts_ns, lots, last_trade_id FROM baselines"
            )
        },
        last_funding_ns={
            (venue, symbol): latest
            for venue, symbol, latest in conn.execute(
                "SELECT venue, symbol, MAX(funding_time_ns) FROM funding GROUP BY venue, symbol"
            )
        },
    )


def _market_recovery(conn: sqlite3.Connection, market: str, decisions_kept: int) -> MarketRecovery:
    checkpoint = _latest_checkpoint(conn, market)
    after = 0 if checkpoint is None else checkpoint.seq
    fills = tuple(
        _fill(row)
        for row in conn.execute(
            f"SELECT {_FILL_COLUMNS} FROM fills WHERE market = ? AND seq > ? ORDER BY seq",
            (market, after),
        )
    )
    decisions = [
        _decision(row)
        for row in conn.execute(
            f"SELECT {_DECISION_COLUMNS} FROM hedges WHERE market = ? AND kind = 'decision' "
            "ORDER BY seq DESC LIMIT ?",
            (market, decisions_kept),
        )
    ]
    decisions.reverse()
    funding = tuple(
        FundingPayment(*row)
        for row in conn.execute(
            "SELECT seq, run_id, market, venue, symbol, funding_time_ns, amount, asset, rate, "
            "position_base FROM funding WHERE market = ? AND seq > ? ORDER BY seq",
            (market, after),
        )
    )
    return MarketRecovery(
        market=market,
        checkpoint=checkpoint,
        fills=fills,
        hedge_decisions=tuple(decisions),
        risk=_risk(conn, market, checkpoint),
        funding=funding,
    )


def _latest_checkpoint(conn: sqlite3.Connection, market: str | None) -> Checkpoint | None:
    row = conn.execute(
        "SELECT seq, run_id, market, ts_ns, ledger_json, risk_json FROM checkpoints "
        "WHERE market IS ? ORDER BY seq DESC LIMIT 1",
        (market,),
    ).fetchone()
    if row is None:
        return None
    seq, run_id, name, ts_ns, ledger_json, risk_json = row
    return Checkpoint(
        seq=seq,
        run_id=run_id,
        market=name,
        ts_ns=ts_ns,
        ledger=None if ledger_json is None else json.loads(ledger_json),
        risk=None if risk_json is None else json.loads(risk_json),
    )


def _risk(
    conn: sqlite3.Connection, market: str | None, checkpoint: Checkpoint | None
) -> dict[str, Any] | None:
    """The risk state: the checkpoint's, then the changes journaled after it, then the
    drawdown peak of the latest snapshot (peaks move every second; checkpoints are rarer)."""
    state: dict[str, Any] = {"state": "ACTIVE", "halted_reason": "", "peak_pnl_quote": None}
    found = False
    since = 0
    if checkpoint is not None and checkpoint.risk is not None:
        state = dict(checkpoint.risk)
        since = checkpoint.seq
        found = True
    for seq, name, reason, source in conn.execute(
        "SELECT seq, state, reason, source FROM risk_states WHERE market IS ? AND seq > ? "
        "ORDER BY seq",
        (market, since),
    ):
        found = True
        state["state"] = name
        state["halted_reason"] = reason if name == "HALTED" else ""
        if name != "HALTED" and source == "operator":
            state["peak_pnl_quote"] = None  # a reset starts the drawdown from the next P&L
            since = seq
    if market is not None:
        row = conn.execute(
            "SELECT seq, drawdown_peak FROM snapshots WHERE market = ? "
            "ORDER BY ts_ns DESC, seq DESC LIMIT 1",
            (market,),
        ).fetchone()
        if row is not None and row[0] > since:
            found = True
            state["peak_pnl_quote"] = row[1]
    return state if found else None


def _last_trades(conn: sqlite3.Connection) -> dict[tuple[str, str], TradeMark]:
    """Per venue and symbol: the highest trade id where the ids are numbers (Binance counts
    them up per symbol), else the latest journaled. Index lookups only: no scan of the fills."""
    marks = {}
    for venue, symbol in conn.execute("SELECT DISTINCT venue, symbol FROM instruments"):
        row = (
            conn.execute(
                "SELECT trade_id, ts_exchange_ns FROM fills WHERE venue = ?1 AND symbol = ?2 "
                "AND trade_number = (SELECT max(trade_number) FROM fills "
                "WHERE venue = ?1 AND symbol = ?2)",
                (venue, symbol),
            ).fetchone()
            or conn.execute(
                "SELECT trade_id, ts_exchange_ns FROM fills WHERE venue = ? AND symbol = ? "
                "ORDER BY seq DESC LIMIT 1",
                (venue, symbol),
            ).fetchone()
        )
        if row is not None:
            marks[(venue, symbol)] = TradeMark(row[0], row[1])
    return marks


def _open_orders(conn: sqlite3.Connection) -> tuple[OpenOrder, ...]:
    """Orders whose last journaled state is not final; the fills journaled for each win over
    a status that was still buffered at a kill (a fill commits with everything before it, but
    the status that follows it may be lost)."""
    orders = []
    for row in conn.execute(
        "SELECT o.market, o.run_id, r.mode, o.venue, o.symbol, o.client_order_id, "
        "o.exchange_order_id, o.side, o.order_type, o.price_ticks, o.size_lots, o.filled_lots, "
        "o.status, o.ts_ns, "
        "(SELECT coalesce(sum(f.size_lots), 0) FROM fills AS f WHERE f.venue = o.venue "
        "AND f.symbol = o.symbol AND f.client_order_id = o.client_order_id) "
        "FROM open_orders AS o JOIN runs AS r ON r.run_id = o.run_id ORDER BY o.seq"
    ):
        (market, run_id, mode, venue, symbol, client_id, exchange_id, side, order_type) = row[:9]
        price_ticks, size_lots, filled_lots, status, ts_ns, filled_journaled = row[9:]
        if side is None or price_ticks is None or size_lots is None:
            continue  # a cancel of an order the journal never saw sent: nothing to restore
        filled = max(filled_lots or 0, filled_journaled)
        if filled >= size_lots:
            continue
        order_status = OrderStatus(status)
        if filled > 0 and order_status in (OrderStatus.OPEN, OrderStatus.PENDING_NEW):
            order_status = OrderStatus.PARTIALLY_FILLED
        orders.append(
            OpenOrder(
                market=market,
                run_id=run_id,
                mode=mode,
                venue=venue,
                symbol=symbol,
                client_order_id=client_id,
                exchange_order_id=exchange_id or "",
                side=Side(side),
                order_type=OrderType(order_type or OrderType.LIMIT_MAKER.value),
                price_ticks=price_ticks,
                size_lots=size_lots,
                filled_lots=filled,
                status=order_status,
                ts_ns=ts_ns,
            )
        )
    return tuple(orders)


# -- reports -----------------------------------------------------------------------------------


def list_runs(path: Path | str) -> list[RunInfo]:
    """Every run in the journal at `path`, oldest first (read-only)."""
    path = Path(path)
    if path.exists() and schema.inspect(path, integrity_check=False) is None:
        return []
    with _reading(path) as conn:
        return _runs(conn, "ORDER BY run_id", ())


def load_run_series(
    path: Path | str,
    run_id: int | None = None,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    market: str | None = None,
) -> RunSeries:
    """The records of one run (default: the latest) or of a time range, read-only.

    With `start_ns`/`end_ns` and no `run_id`, every run overlapping the range contributes;
    `market` keeps one market's snapshots, fills and hedges. Raises JournalError (one line)
    for a journal without runs or an unknown run.
    """
    path = Path(path)
    with _reading(path) as conn:
        if run_id is None and start_ns is None and end_ns is None:
            runs = _runs(conn, "ORDER BY run_id DESC LIMIT 1", ())
            if not runs:
                raise JournalError(f"journal {path} holds no run yet")
        elif run_id is not None:
            runs = _runs(conn, "WHERE run_id = ?", (run_id,))
            if not runs:
                raise JournalError(
                    f"journal {path} has no run {run_id}: list its runs and pick one"
                )
        else:
            runs = []
        if runs:
            run = runs[0]
            low = run.started_ns if start_ns is None else start_ns
            high = (run.ended_ns or _last_ts(conn, run.run_id)) if end_ns is None else end_ns
            run_filter = "run_id = ?"
            run_args: tuple[Any, ...] = (run.run_id,)
        else:
            low = 0 if start_ns is None else start_ns
            high = 2**63 - 1 if end_ns is None else end_ns
            runs = _runs(
                conn,
                "WHERE started_ns <= ? AND coalesce(ended_ns, ?) >= ? ORDER BY run_id",
                (high, 2**63 - 1, low),
            )
            run_filter = "1"
            run_args = ()

        def query(
            select: str, ts: str, *, by_market: bool = True, where: str = ""
        ) -> list[tuple[Any, ...]]:
            conditions = [run_filter, f"{ts} BETWEEN ? AND ?"]
            args = [*run_args, low, high]
            if by_market and market is not None:
                conditions.append("market = ?")
                args.append(market)
            if where:
                conditions.append(where)
            return conn.execute(
                f"{select} WHERE {' AND '.join(conditions)} ORDER BY {ts}, seq", args
            ).fetchall()

        run_ids = [run.run_id for run in runs]
        return RunSeries(
            runs=tuple(runs),
            start_ns=low,
            end_ns=high,
            instruments=tuple(
                InstrumentInfo(*row)
                for row in conn.execute(
                    "SELECT run_id, venue, symbol, exchange_symbol, kind, base, quote, tick_size, "
                    f"lot_size, contract_size_base FROM instruments WHERE run_id IN "
                    f"({', '.join('?' * len(run_ids))}) ORDER BY run_id, venue, symbol",
                    run_ids,
                )
            ),
            snapshots=tuple(
                _snapshot(row)
                for row in query(f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots", "ts_ns")
            ),
            fills=tuple(
                _fill(row) for row in query(f"SELECT {_FILL_COLUMNS} FROM fills", "ts_local_ns")
            ),
            hedge_decisions=tuple(
                _decision(row)
                for row in query(
                    f"SELECT {_DECISION_COLUMNS} FROM hedges", "ts_ns", where="kind = 'decision'"
                )
            ),
            hedge_outcomes=tuple(
                HedgeOutcome(*row)
                for row in query(
                    f"SELECT {_OUTCOME_COLUMNS} FROM hedges", "ts_ns", where="kind = 'outcome'"
                )
            ),
            risk_changes=tuple(
                RiskChange(*row)
                for row in query(
                    "SELECT seq, run_id, market, ts_ns, state, reason, source FROM risk_states",
                    "ts_ns",
                    by_market=False,
                )
                if market is None or row[2] in (None, market)
            ),
            control_actions=tuple(
                ControlAction(*row)
                for row in query(
                    "SELECT seq, run_id, ts_ns, action, caller, result, detail "
                    "FROM control_actions",
                    "ts_ns",
                    by_market=False,
                )
            ),
            funding=tuple(
                FundingPayment(*row)
                for row in query(
                    "SELECT seq, run_id, market, venue, symbol, funding_time_ns, amount, asset, "
                    "rate, position_base FROM funding",
                    "funding_time_ns",
                )
            ),
        )


class _reading:  # noqa: N801  used as a context manager, named like one
    """A read-only connection to a checked journal; SQLite errors become JournalCorruptError."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> sqlite3.Connection:
        if not self._path.exists():
            raise JournalError(f"journal {self._path} does not exist: check state.dir")
        if schema.inspect(self._path, integrity_check=False) is None:
            raise JournalError(f"journal {self._path} holds no run yet")
        self._conn = schema.connect_read_only(self._path)
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.close()
        if isinstance(exc, sqlite3.Error):
            raise JournalCorruptError(
                f"journal {self._path} cannot be read ({exc}): move it away or start a new "
                "journal with --fresh (the old file is kept)"
            ) from None


def _runs(conn: sqlite3.Connection, clause: str, args: tuple[Any, ...]) -> list[RunInfo]:
    return [
        RunInfo(
            run_id=run_id,
            instance_id=instance_id,
            mode=mode,
            started_ns=started,
            ended_ns=ended,
            end_reason=reason,
            config_yaml=config_yaml,
            summary=None if summary is None else json.loads(summary),
        )
        for run_id, instance_id, mode, started, ended, reason, config_yaml, summary in (
            conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs {clause}", args)
        )
    ]


def _last_ts(conn: sqlite3.Connection, run_id: int) -> int:
    """Where a run without an end (running, or killed) ends: its latest timed record."""
    row = conn.execute(
        "SELECT max(ts) FROM (SELECT max(ts_ns) AS ts FROM snapshots WHERE run_id = ?1 "
        "UNION ALL SELECT max(ts_local_ns) FROM fills WHERE run_id = ?1 "
        "UNION ALL SELECT max(ts_ns) FROM risk_states WHERE run_id = ?1 "
        "UNION ALL SELECT max(ts_ns) FROM control_actions WHERE run_id = ?1 "
        "UNION ALL SELECT started_ns FROM runs WHERE run_id = ?1)",
        (run_id,),
    ).fetchone()
    return int(row[0])


def _fill(row: tuple[Any, ...]) -> JournaledFill:
    (seq, run_id, market, venue, symbol, ts_exchange, ts_local, client_id, exchange_id) = row[:9]
    trade_id, side, price_ticks, size_lots, fee, liquidity = row[9:15]
    entry, entry_reference, hedge, price, size, fee_asset, recovered = row[15:]
    return JournaledFill(
        seq=seq,
        run_id=run_id,
        market=market,
        fill=Fill(
            venue=venue,
            symbol=symbol,
            ts_exchange_ns=ts_exchange,
            ts_local_ns=ts_local,
            client_order_id=client_id,
            exchange_order_id=exchange_id,
            trade_id=trade_id,
            side=Side(side),
            price_ticks=price_ticks,
            size_lots=size_lots,
            fee_quote=fee,
            liquidity=Liquidity(liquidity),
        ),
        marks=FillMarks(int(entry), int(entry_reference), bool(hedge)),
        price=price,
        size=size,
        fee_asset=fee_asset,
        recovered=bool(recovered),
    )


def _decision(row: tuple[Any, ...]) -> HedgeDecision:
    seq, run_id, market, ts_ns, venue, symbol, client_id, side, size_lots, price_ticks = row[:10]
    fair_value, reference_fair_value, exposure_change = row[10:]
    return HedgeDecision(
        seq=seq,
        run_id=run_id,
        market=market,
        ts_ns=ts_ns,
        venue=venue,
        symbol=symbol,
        client_order_id=client_id,
        side=Side(side),
        size_lots=size_lots,
        price_ticks=price_ticks,
        fair_value=fair_value,
        reference_fair_value=reference_fair_value,
        exposure_change_base=exposure_change,
    )


def _snapshot(row: tuple[Any, ...]) -> Snapshot:
    values = list(row)
    values[-1] = bool(values[-1])  # paused
    return Snapshot(*values)
