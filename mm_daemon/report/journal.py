"""A run's report data read from its journal: `RunSeries` -> `RunData`.

`load_run_data(path, run_id)` reads one run (default: the latest) or a time range of a journal
file, read-only (also while its daemon runs), and `run_data_from_series` turns the records into
what the page shows:

- markets and their limits come from the config the run journaled (its markets with every
  section merged in); instruments (tick, lot, contract size, currencies) from the run's
  instruments;
- a market's snapshots are its own 1 s series; in a run of one market its P&L is the whole
  ledger's (the asset's series: the market and its hedge), as the run summary's is;
- fills are mapped to their market by venue and symbol; hedge fills, hedges and their outcomes
  belong to the asset (the journal keys them by it) and are shown with each of its markets;
- markouts are the journaled ones, exactly those the run summary averages;
- REDUCING and HALTED come from the journaled risk changes (exact times, with reasons), pauses
  from the snapshots (to the second, with the quoter's reason);
- the header's figures are the run summary's, read back from the journal, when the run ended
  cleanly and the whole run is reported; otherwise (a killed or running run, a time range) they
  are rebuilt from the records and the page says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mm_daemon.core.markouts import Markout, horizon_seconds
from mm_daemon.core.pnl import COMPONENTS
from mm_daemon.core.risk import RiskState
from mm_daemon.core.summary import FillCounts, RunSummary, summary_from_dict
from mm_daemon.core.types import Liquidity, Side
from mm_daemon.engine.journal import (
    InstrumentInfo,
    JournaledFill,
    RiskChange,
    RunInfo,
    RunSeries,
    load_run_series,
)
from mm_daemon.engine.journal import Snapshot as JournalSnapshot
from mm_daemon.report.data import (
    AssetRun,
    FillRecord,
    HedgeRecord,
    Interval,
    MarketRun,
    Pnl,
    RunData,
    Snapshot,
)

__all__ = [
    "default_report_name",
    "load_run_data",
    "parse_time",
    "pnl_curve",
    "run_data_from_series",
    "runs_table",
]

_NS = 1_000_000_000
_NANOS = 1_000_000_000  # entry marks are journaled in 1e-9 quote (pnl.fair_nanos)
_ACTIVE = RiskState.ACTIVE.name


def load_run_data(
    path: Path | str,
    run_id: int | None = None,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    mode: str | None = None,
    title: str = "",
) -> RunData:
    """The report data of one run (default: the latest) or of a time range of the journal at
    `path`. Raises JournalError (one line) for a missing journal, no run, an unknown run."""
    series = load_run_series(path, run_id, start_ns=start_ns, end_ns=end_ns)
    return run_data_from_series(series, mode=mode, title=title)


def pnl_curve(series: RunSeries) -> tuple[tuple[int, float], ...]:
    """The run's total P&L at each 1 s snapshot: the sum of its assets' ledgers."""
    assets = _assets_of(_config_markets(series))
    totals: dict[int, float] = {}
    for snap in series.snapshots:
        if snap.market in assets:
            totals[snap.ts_ns] = totals.get(snap.ts_ns, 0.0) + snap.pnl_total
    return tuple(sorted(totals.items()))


# -- the config that ran -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MarketSpec:
    """What the report needs of one configured market."""

    name: str
    venue: str
    symbol: str
    asset: str
    hedge_venue: str | None
    hedge_symbol: str | None
    inventory_limit_base: float
    hedge_threshold_base: float | None  # None: hedging off


def _config_markets(series: RunSeries) -> list[_MarketSpec]:
    """The markets of the runs' configs (a later run's wins for a name), in config order."""
    specs: dict[str, _MarketSpec] = {}
    for run in series.runs:
        try:
            document = yaml.safe_load(run.config_yaml) or {}
        except yaml.YAMLError:
            continue
        for market in document.get("markets") or ():
            spec = _market_spec(market)
            if spec is not None:
                specs[spec.name] = spec
    return list(specs.values())


def _market_spec(market: Mapping[str, Any]) -> _MarketSpec | None:
    try:
        symbol = str(market["symbol"])
        venue = str(market["venue"])
    except (KeyError, TypeError):
        return None
    hedge = market.get("hedge") or {}
    hedging = market.get("hedging") or {}
    inventory = market.get("inventory") or {}
    hedged = bool(hedge) and hedging.get("mode", "threshold") != "off"
    return _MarketSpec(
        name=str(market.get("name") or f"{symbol}@{venue}"),
        venue=venue,
        symbol=symbol,
        asset=symbol.split("/", 1)[0],
        hedge_venue=str(hedge["venue"]) if hedge else None,
        hedge_symbol=str(hedge["symbol"]) if hedge else None,
        inventory_limit_base=float(inventory.get("limit_base", 0.0)),
        hedge_threshold_base=float(hedging.get("threshold_base", 0.0)) if hedged else None,
    )


def _assets_of(specs: Iterable[_MarketSpec]) -> set[str]:
    return {spec.asset for spec in specs}


# -- records into the report's classes ---------------------------------------------------------


def _pnl(snap: JournalSnapshot) -> Pnl:
    return Pnl(
        spread_capture=snap.pnl_spread_capture,
        fees=snap.pnl_fees,
        inventory=snap.pnl_inventory,
        hedge_cost=snap.pnl_hedge_cost,
        basis=snap.pnl_basis,
        funding=snap.pnl_funding,
        total=snap.pnl_total,
    )


_RISK_STATES = {state.name: state for state in RiskState}


def _risk_state(name: str) -> RiskState:
    return _RISK_STATES.get(name, RiskState.ACTIVE)


def _snapshot(snap: JournalSnapshot, pnl: Pnl | None = None) -> Snapshot:
    return Snapshot(
        ts_ns=snap.ts_ns,
        fair_value=snap.fair_value,
        best_bid=snap.best_bid,
        best_ask=snap.best_ask,
        bid_quote=snap.quote_bid,
        ask_quote=snap.quote_ask,
        position_base=snap.position_base,
        net_exposure_base=snap.net_exposure_base,
        pnl=_pnl(snap) if pnl is None else pnl,
        risk_state=_risk_state(snap.risk_state),
        paused=snap.paused,
    )


def _base_per_lot(instrument: InstrumentInfo | None) -> float:
    if instrument is None:
        return 0.0
    return instrument.lot_size * instrument.contract_size_base


def _fill_record(
    journaled: JournaledFill, market: str, instrument: InstrumentInfo | None
) -> FillRecord:
    fill = journaled.fill
    size_base = (
        fill.size_lots * _base_per_lot(instrument) if instrument is not None else journaled.size
    )
    entry = journaled.marks.entry_nanos / _NANOS
    return FillRecord(
        ts_ns=fill.ts_local_ns,
        market=market,
        venue=fill.venue,
        symbol=fill.symbol,
        side=fill.side,
        price=journaled.price,
        size_base=size_base,
        fee_quote=fill.fee_quote,
        liquidity=fill.liquidity,
        is_hedge=journaled.marks.hedge,
        # s * x * (E - p): the fill's edge on the entry mark it was booked from (pnl.py)
        spread_capture_quote=fill.side * size_base * (entry - journaled.price),
    )


def _hedge_records(
    series: RunSeries, instruments: Mapping[tuple[str, str], InstrumentInfo]
) -> dict[str, list[HedgeRecord]]:
    """Each asset's hedge orders as they ended (filled, partly, rejected, cancelled)."""
    sides = {(d.venue, d.symbol, d.client_order_id): d.side for d in series.hedge_decisions}
    by_asset: dict[str, list[HedgeRecord]] = {}
    for outcome in series.hedge_outcomes:
        key = (outcome.venue, outcome.symbol, outcome.client_order_id)
        side = sides.get(key)
        if side is None:
            continue  # its decision is outside the range
        filled = outcome.filled_lots or 0
        by_asset.setdefault(outcome.market, []).append(
            HedgeRecord(
                ts_ns=outcome.ts_ns,
                venue=outcome.venue,
                symbol=outcome.symbol,
                side=side,
                size_base=filled * _base_per_lot(instruments.get(key[:2])),
                slippage_bps=outcome.slippage_bps if filled else None,
            )
        )
    return by_asset


def _risk_intervals(
    snapshots: Sequence[JournalSnapshot],
    changes: Sequence[RiskChange],
    start_ns: int,
    end_ns: int,
) -> list[Interval]:
    """REDUCING and HALTED spans from the journaled changes; the state before the first
    change is the first snapshot's when that snapshot precedes it."""
    current = _ACTIVE
    if snapshots and (not changes or snapshots[0].ts_ns < changes[0].ts_ns):
        current = snapshots[0].risk_state
    since, reason = start_ns, ""
    spans: list[Interval] = []
    for change in changes:
        if change.state == current:
            continue
        if current != _ACTIVE:
            spans.append(Interval(current, since, change.ts_ns, reason))
        current, since, reason = change.state, change.ts_ns, change.reason
    if current != _ACTIVE:
        spans.append(Interval(current, since, max(since, end_ns), reason))
    return spans


def _pause_intervals(snapshots: Sequence[JournalSnapshot], end_ns: int) -> list[Interval]:
    """Paused spans read off the 1 s snapshots, one per reason."""
    spans: list[Interval] = []
    since: int | None = None
    reason = ""
    for snap in snapshots:
        now_reason = snap.pause_reason if snap.paused else None
        if since is not None and now_reason != reason:
            spans.append(Interval("paused", since, snap.ts_ns, reason))
            since = None
        if now_reason is not None and since is None:
            since, reason = snap.ts_ns, now_reason
    if since is not None:
        last = snapshots[-1].ts_ns if snapshots else end_ns
        spans.append(Interval("paused", since, last, reason))
    return spans


# -- summaries ---------------------------------------------------------------------------------


def _whole_run_summary(series: RunSeries) -> RunSummary | None:
    """The run summary the daemon journaled, when the range is exactly one run that ended
    cleanly (a killed run has none)."""
    if len(series.runs) != 1:
        return None
    run = series.runs[0]
    if run.summary is None or run.ended_ns is None:
        return None
    if (series.start_ns, series.end_ns) != (run.started_ns, run.ended_ns):
        return None
    try:
        return summary_from_dict(run.summary)
    except (KeyError, TypeError, ValueError):
        return None


def _counts(fills: Iterable[FillRecord]) -> FillCounts:
    buys = sells = maker = taker = 0
    volume_base = volume_quote = 0.0
    for fill in fills:
        if fill.side is Side.BUY:
            buys += 1
        else:
            sells += 1
        if fill.liquidity is Liquidity.MAKER:
            maker += 1
        else:
            taker += 1
        volume_base += fill.size_base
        volume_quote += fill.size_base * fill.price
    return FillCounts(buys, sells, maker, taker, volume_base, volume_quote)


def _rebuilt_summary(
    spec: _MarketSpec,
    instrument: InstrumentInfo | None,
    *,
    snapshots: Sequence[Snapshot],
    fills: Sequence[FillRecord],
    hedges: Sequence[HedgeRecord],
    markouts: Sequence[Markout],
    unanswered_hedges: int,
    duration_seconds: float,
) -> RunSummary:
    """A market's summary rebuilt from its records where the run left none: fills, hedges and
    markouts of the range; P&L and exposure as of the last snapshot; the largest |net| and the
    time unhedged to the second."""
    last = snapshots[-1] if snapshots else None
    pnl = last.pnl if last is not None else Pnl()
    pnl_quote = {name: pnl.component(name) for name in COMPONENTS}
    if any(s.pnl.funding for s in snapshots):
        pnl_quote["funding"] = pnl.funding
    pnl_quote["total"] = pnl.total
    by_horizon: dict[str, list[float]] = {}
    for markout in markouts:
        by_horizon.setdefault(markout.horizon, []).append(markout.bps)
    filled = [h for h in hedges if h.slippage_bps is not None]
    threshold = spec.hedge_threshold_base
    return RunSummary(
        duration_seconds=duration_seconds,
        quote_currency=instrument.quote if instrument else "quote",
        base_currency=instrument.base if instrument else spec.asset,
        quoting_fills=_counts(f for f in fills if not f.is_hedge),
        hedge_fills=_counts(f for f in fills if f.is_hedge),
        pnl_quote=pnl_quote,
        net_exposure_base=last.net_exposure_base if last is not None else 0.0,
        max_abs_net_exposure_base=max((abs(s.net_exposure_base) for s in snapshots), default=0.0),
        markouts={
            horizon: (sum(values) / len(values), len(values))
            for horizon, values in sorted(by_horizon.items(), key=lambda i: horizon_seconds(i[0]))
        },
        hedge_orders=len(hedges) + unanswered_hedges,
        hedge_rejects=sum(1 for h in hedges if h.slippage_bps is None),
        hedge_timeouts=unanswered_hedges,
        hedge_mean_slippage_bps=(
            sum(h.slippage_bps or 0.0 for h in filled) / len(filled) if filled else None
        ),
        unhedged_exposure_seconds=float(
            sum(1 for s in snapshots if abs(s.net_exposure_base) > threshold)
            if threshold is not None
            else 0
        ),
    )


# -- the conversion ----------------------------------------------------------------------------


def _span(series: RunSeries) -> tuple[int, int]:
    """The reported span: the range asked for, within the runs' and their records' times."""
    runs = series.runs
    if not runs:
        return series.start_ns, series.start_ns
    start = max(series.start_ns, min(run.started_ns for run in runs))
    latest = max(
        (
            *(run.ended_ns or run.started_ns for run in runs),
            *(s.ts_ns for s in series.snapshots[-1:]),
            *(f.fill.ts_local_ns for f in series.fills[-1:]),
        )
    )
    return start, max(start, min(series.end_ns, latest))


def _utc(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / _NS, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_data_from_series(series: RunSeries, *, mode: str | None = None, title: str = "") -> RunData:
    """What the report shows of the journal's records (see the module doc)."""
    specs = _config_markets(series)
    instruments: dict[tuple[str, str], InstrumentInfo] = {
        (i.venue, i.symbol): i for i in series.instruments
    }
    by_market: dict[str, list[JournalSnapshot]] = {}
    for snap in series.snapshots:
        by_market.setdefault(snap.market, []).append(snap)
    fills_of_instrument = {(s.venue, s.symbol): s.name for s in specs}
    quoting_fills: dict[str, list[FillRecord]] = {}
    hedge_fills: dict[str, list[FillRecord]] = {}
    for journaled in series.fills:
        fill = journaled.fill
        key = (fill.venue, fill.symbol)
        if journaled.marks.hedge:
            hedge_fills.setdefault(journaled.market, []).append(
                _fill_record(journaled, journaled.market, instruments.get(key))
            )
        elif key in fills_of_instrument:
            name = fills_of_instrument[key]
            quoting_fills.setdefault(name, []).append(
                _fill_record(journaled, name, instruments.get(key))
            )
    hedges = _hedge_records(series, instruments)
    answered = {(o.venue, o.symbol, o.client_order_id) for o in series.hedge_outcomes}
    unanswered: dict[str, int] = {}
    for decision in series.hedge_decisions:
        if (decision.venue, decision.symbol, decision.client_order_id) not in answered:
            unanswered[decision.market] = unanswered.get(decision.market, 0) + 1
    markouts: dict[str, list[Markout]] = {}
    for m in series.markouts:
        markouts.setdefault(m.market, []).append(Markout(m.horizon, m.bps, m.fill_ts_ns, m.side))

    summary = _whole_run_summary(series)
    summary_markets = dict(summary.markets) if summary is not None else {}
    traded = [
        spec
        for spec in specs
        if (spec.name in summary_markets)
        or (summary is None and (spec.name in by_market or spec.name in quoting_fills))
    ]
    single = len(traded) == 1
    failed = dict(summary.failed_markets) if summary is not None else {}
    for spec in specs:
        if spec not in traded and spec.name not in failed:
            failed[spec.name] = "no records of it in the journal (it did not start or trade)"
    start_ns, end_ns = _span(series)
    duration = (end_ns - start_ns) / _NS

    asset_snaps = {
        spec.asset: by_market.get(spec.asset, []) for spec in traded if spec.asset in by_market
    }
    asset_pnl = {
        asset: {snap.ts_ns: _pnl(snap) for snap in snaps} for asset, snaps in asset_snaps.items()
    }
    runs: list[MarketRun] = []
    for spec in traded:
        journal_snaps = by_market.get(spec.name, [])
        whole = asset_pnl.get(spec.asset, {}) if single else {}
        snapshots = tuple(_snapshot(s, whole.get(s.ts_ns)) for s in journal_snaps)
        fills = sorted(
            [*quoting_fills.get(spec.name, ()), *hedge_fills.get(spec.asset, ())],
            key=lambda f: f.ts_ns,
        )
        instrument = instruments.get((spec.venue, spec.symbol))
        market_hedges = tuple(hedges.get(spec.asset, ()))
        market_markouts = tuple(markouts.get(spec.name, ()))
        if summary is not None:
            market_summary = summary if single else summary_markets[spec.name]
        else:
            market_summary = _rebuilt_summary(
                spec,
                instrument,
                snapshots=snapshots,
                fills=fills,
                hedges=market_hedges,
                markouts=market_markouts,
                unanswered_hedges=unanswered.get(spec.asset, 0),
                duration_seconds=duration,
            )
        intervals = sorted(
            [
                *_risk_intervals(
                    journal_snaps,
                    [c for c in series.risk_changes if c.market == spec.name],
                    start_ns,
                    end_ns,
                ),
                *_pause_intervals(journal_snaps, end_ns),
            ],
            key=lambda i: (i.start_ns, i.kind),
        )
        runs.append(
            MarketRun(
                market=spec.name,
                venue=spec.venue,
                symbol=spec.symbol,
                summary=market_summary,
                snapshots=snapshots,
                fills=tuple(fills),
                hedges=market_hedges,
                markouts=market_markouts,
                intervals=tuple(intervals),
                inventory_limit_base=spec.inventory_limit_base,
                hedge_threshold_base=spec.hedge_threshold_base,
                hedge_venue=spec.hedge_venue,
                hedge_symbol=spec.hedge_symbol,
            )
        )
    assets = []
    for asset, snaps in asset_snaps.items():
        spec = next(s for s in traded if s.asset == asset)
        instrument = instruments.get((spec.venue, spec.symbol))
        assets.append(
            AssetRun(
                asset=asset,
                quote_currency=instrument.quote if instrument else "quote",
                snapshots=tuple(_snapshot(s) for s in snaps),
                hedge_venue=spec.hedge_venue,
                hedge_symbol=spec.hedge_symbol,
            )
        )
    latest = series.runs[-1] if series.runs else None
    run_modes = list(dict.fromkeys(run.mode for run in series.runs))
    instance = latest.instance_id if latest else "unknown"
    if len(series.runs) == 1 and latest is not None:
        span = f"run {latest.run_id}"
    else:
        span = f"{_utc(start_ns)} to {_utc(end_ns)}"
    return RunData(
        mode=mode or "+".join(run_modes) or "unknown",
        instance=instance,
        started_ns=start_ns,
        ended_ns=end_ns,
        config_text=latest.config_yaml if latest else "",
        markets=tuple(runs),
        title=title or f"{instance} {span}",
        summary=summary,
        assets=tuple(assets),
        note="" if summary is not None else _note(series),
        failed_markets=tuple(failed.items()),
    )


def _note(series: RunSeries) -> str:
    if len(series.runs) == 1 and series.runs[0].summary is None:
        run = series.runs[0]
        why = (
            "is still running"
            if run.ended_ns is None
            else "did not end cleanly (killed or crashed)"
            if run.end_reason == "unclean"
            else "ended without a summary"
        )
        lead = f"Run {run.run_id} {why}, so the journal holds no run summary."
    else:
        lead = "A time range of the journal rather than one whole run."
    return (
        f"{lead} The figures below are rebuilt from its records: fills, hedges and markouts of "
        "the range; P&L and exposure as of the last 1 s snapshot; the largest |net exposure| "
        "and the time unhedged to the second."
    )


# -- the command line --------------------------------------------------------------------------


def parse_time(text: str) -> int:
    """A time given on the command line, as Unix nanoseconds: ISO 8601 (UTC unless it says
    otherwise: "2026-01-01T10:00", "2026-01-01 10:00:30+02:00") or Unix seconds. ValueError
    with what was expected."""
    value = text.strip()
    try:
        return round(float(value) * _NS)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give ISO 8601 (2026-01-01T10:00, UTC unless an offset is "
            "given) or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * _NS)


def default_report_name(data: RunData, run_id: int | None) -> str:
    """`<instance>-run<N>.html`, or `<instance>-<from>-<to>.html` for a time range."""
    if run_id is not None:
        return f"{data.instance}-run{run_id}.html"

    def stamp(ts_ns: int) -> str:
        return dt.datetime.fromtimestamp(ts_ns / _NS, tz=dt.UTC).strftime("%Y%m%dT%H%M%S")

    return f"{data.instance}-{stamp(data.started_ns)}-{stamp(data.ended_ns)}.html"


def runs_table(runs: Sequence[RunInfo]) -> str:
    """One line per run: id, mode, start, duration, how it ended, quoting fills, P&L."""
    lines = [
        f"{'run':>4}  {'mode':<6}  {'started (UTC)':<23}  {'duration':>10}  {'ended':<16}  "
        f"{'fills':>7}  {'P&L':>12}"
    ]
    for run in runs:
        end = "running" if run.ended_ns is None else (run.end_reason or "stopped")
        seconds = None if run.ended_ns is None else (run.ended_ns - run.started_ns) / _NS
        duration = "-" if seconds is None else f"{seconds:,.0f} s"
        fills = pnl = "-"
        if run.summary is not None:
            try:
                fills = f"{int(run.summary['fills']['quoting']['count']):,}"
                total = float(run.summary["pnl_quote"]["total"])
                pnl = f"{total:,.2f} {run.summary.get('quote_currency', '')}".strip()
            except (KeyError, TypeError, ValueError):
                pass
        lines.append(
            f"{run.run_id:>4}  {run.mode:<6}  {_utc(run.started_ns):<23}  {duration:>10}  "
            f"{end[:16]:<16}  {fills:>7}  {pnl:>12}"
        )
    return "\n".join(lines)
