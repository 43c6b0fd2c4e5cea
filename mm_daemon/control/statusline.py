"""The one-line status a daemon prints on a terminal every few seconds (instead of a line per
fill): per market its fair value, our quotes, position and P&L, and any state that is not plain
quoting; then the portfolio's P&L.

    14:02:05 trading up 1m05s | BTC/USDT@sim-spot 60012.40 [60010.10 60014.50] pos +0.0200
    pnl +1.23 | ETH/USDT@sim-spot ... PAUSED | total +1.50
"""

from __future__ import annotations

import time

from mm_daemon.control.api import MarketStatus, Status

__all__ = ["duration", "market_flags", "status_line"]


def duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def market_flags(market: MarketStatus) -> str:
    """What keeps the market from plain quoting, in capitals (empty when nothing does)."""
    flags: list[str] = []
    if market.risk.state != "ACTIVE":
        flags.append("KILLED" if market.risk.killed else market.risk.state)
    if market.operator_paused:
        flags.append("PAUSED")
    elif market.paused and market.pause_reason not in ("halted", ""):
        flags.append(market.pause_reason.upper())
    if market.stale and "STALE" not in flags:
        flags.append("STALE")
    return " ".join(flags)


def status_line(status: Status, *, now: float | None = None) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    parts = [f"{clock} {status.state} up {duration(status.uptime_seconds)}"]
    for market in status.markets:
        text = (
            f"{market.name} {_number(market.fair_value)} "
            f"[{_number(market.quote_bid)} {_number(market.quote_ask)}] "
            f"pos {market.position_base:+.4f} pnl {market.pnl.get('total', 0.0):+.2f}"
        )
        flags = market_flags(market)
        parts.append(f"{text} {flags}" if flags else text)
    if status.portfolio is not None:
        parts.append(f"total {status.portfolio.pnl.get('total', 0.0):+.2f}")
    if not status.readiness.ready and status.state == "trading":
        parts.append("NOT READY: " + "; ".join(status.readiness.reasons))
    return " | ".join(parts)
