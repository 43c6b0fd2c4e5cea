"""The status as a terminal reads it (rich): `mm-daemon ctl status` prints these tables and
`mm-daemon ctl top` redraws them every second."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mm_daemon.control.api import MarketStatus, Status
from mm_daemon.control.statusline import duration, market_flags

__all__ = ["status_view", "top_view"]

_PNL_COLUMNS = (
    ("spread", "spread_capture"),
    ("fees", "fees"),
    ("inv", "inventory"),
    ("hedge", "hedge_cost"),
    ("basis", "basis"),
    ("total", "total"),
)


def _n(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _signed(value: float | None, digits: int = 2) -> Text:
    if value is None:
        return Text("-")
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(f"{value:+,.{digits}f}", style=style)


def _state(market: MarketStatus) -> Text:
    flags = market_flags(market)
    if not flags:
        return Text("ACTIVE", style="green")
    style = "bold red" if "HALTED" in flags or "KILLED" in flags else "yellow"
    return Text(flags, style=style)


def _header(status: Status) -> Text:
    ready = (
        Text("ready", style="green")
        if status.readiness.ready
        else Text("not ready: " + "; ".join(status.readiness.reasons), style="bold red")
    )
    text = Text(
        f"{status.instance_id}  {status.mode}  {status.state}  "
        f"up {duration(status.uptime_seconds)}  run {status.run_id or '-'}  v{status.version}  "
    )
    text.append_text(ready)
    if status.portfolio is not None:
        text.append("  total P&L ")
        text.append_text(_signed(status.portfolio.pnl.get("total")))
        if status.portfolio.halted_reason:
            text.append(f"  portfolio HALTED: {status.portfolio.halted_reason}", style="bold red")
    return text


def _markets_table(status: Status) -> Table:
    table = Table(title="markets", title_justify="left")
    widest = max((len(m.name) for m in status.markets), default=6)
    table.add_column("market", no_wrap=True, min_width=widest)
    table.add_column("state")
    for column in ("fair", "bid", "ask", "our bid", "our ask", "orders", "position", "budget"):
        table.add_column(column, justify="right")
    for m in status.markets:
        fullest = max(m.order_budget, key=lambda w: w.used / w.limit, default=None)
        table.add_row(
            m.name,
            _state(m),
            _n(m.fair_value),
            _n(m.best_bid),
            _n(m.best_ask),
            _n(m.quote_bid),
            _n(m.quote_ask),
            str(len(m.open_orders)),
            f"{m.position_base:+.4f}",
            f"{fullest.used}/{fullest.limit} {fullest.window}" if fullest else "-",
        )
    return table


def _pnl_table(status: Status) -> Table:
    table = Table(title="P&L (quote) and markouts (bps)", title_justify="left")
    widest = max((len(m.name) for m in status.markets), default=6)
    table.add_column("market", no_wrap=True, min_width=widest)
    for title, _ in _PNL_COLUMNS:
        table.add_column(title, justify="right")
    horizons = list(status.markets[0].markouts_bps) if status.markets else []
    for horizon in horizons:
        table.add_column(f"mo {horizon}", justify="right")
    table.add_column("fills marked", justify="right")
    for m in status.markets:
        row: list[RenderableType] = [m.name]
        row.extend(_signed(m.pnl.get(key)) for _, key in _PNL_COLUMNS)
        row.extend(_n(m.markouts_bps.get(h)) for h in horizons)
        counts = m.markout_counts
        row.append(str(counts[horizons[0]]) if horizons else "-")
        table.add_row(*row)
    return table


def _assets_table(status: Status) -> Table:
    table = Table(title="assets and hedges", title_justify="left")
    for column in ("asset", "net exposure", "hedge", "mode", "hedge state", "ratio", "hedges"):
        table.add_column(column, justify="left" if column in ("asset", "hedge") else "right")
    table.add_column("P&L", justify="right")
    for a in status.assets:
        hedge = a.hedge
        if hedge is None:
            table.add_row(a.asset, f"{a.net_exposure_base:+.4f}", "-", "-", "-", "-", "-")
            continue
        state = (
            Text("HELD", style="bold red")
            if hedge.held
            else Text(f"DOWN {hedge.down_reason}", style="yellow")
            if hedge.down
            else Text("ok", style="green")
        )
        table.add_row(
            a.asset,
            f"{a.net_exposure_base:+.4f}",
            f"{hedge.symbol}@{hedge.venue}",
            hedge.mode,
            state,
            f"{hedge.hedge_ratio:.3f}",
            f"{hedge.fills}/{hedge.orders}",
            _signed(a.pnl.get("total")),
        )
    return table


def _venues_table(status: Status) -> Table:
    table = Table(title="venues", title_justify="left")
    for column in ("venue", "exchange", "endpoint", "market data", "order entry"):
        table.add_column(column)
    for v in status.venues:
        data = v.market_data + (f" ({', '.join(v.stale_symbols)})" if v.stale_symbols else "")
        entry = v.order_entry + (f" ({v.order_entry_reason})" if v.order_entry_reason else "")
        table.add_row(
            v.name,
            v.exchange,
            v.endpoint,
            Text(data, style="green" if v.market_data == "fresh" else "bold red"),
            Text(entry, style="red" if v.order_entry == "disconnected" else ""),
        )
    return table


def status_view(status: Status) -> RenderableType:
    """Everything /status says, as tables."""
    parts: list[RenderableType] = [_header(status), _markets_table(status), _pnl_table(status)]
    parts.extend(
        Text(f"{m.name}: {m.risk.state} {m.risk.reason}", style="yellow")
        for m in status.markets
        if m.risk.reason
    )
    for name, why in status.failed_markets.items():
        parts.append(Text(f"{name}: failed to start: {why}", style="bold red"))
    parts.extend((_assets_table(status), _venues_table(status)))
    if status.errors:
        errors = Table(title="latest warnings and errors", title_justify="left")
        for column in ("time", "level", "event", "detail"):
            errors.add_column(column, overflow="fold")
        for e in status.errors[-5:]:
            errors.add_row(e.timestamp, e.level, e.event, e.detail)
        parts.append(errors)
    return Group(*parts)


def top_view(status: Status, *, url: str) -> RenderableType:
    """The live panel of `ctl top`: header, markets, hedges."""
    footer = Text(f"{url}  refreshed every second  q: quit", style="dim")
    return Group(
        _header(status),
        _markets_table(status),
        _pnl_table(status),
        _assets_table(status),
        footer,
    )
