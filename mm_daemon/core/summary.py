"""The end-of-run summary: fills, volume, P&L by component, exposure, markouts, hedging.

`build_run_summary` collects it from the ledger, the markout tracker and the hedger;
`render_summary` turns it into an aligned plain-text table; `summary_to_dict` into JSON-ready
data. All pure: the caller prints or writes the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mm_daemon.core.pnl import COMPONENTS

if TYPE_CHECKING:
    from mm_daemon.core.hedging import Hedger
    from mm_daemon.core.inventory import FillStats, Ledger
    from mm_daemon.core.markouts import MarkoutTracker

__all__ = ["RunSummary", "build_run_summary", "render_summary", "summary_to_dict"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FillCounts:
    buys: int
    sells: int
    maker: int
    taker: int
    volume_base: float
    volume_quote: float

    @property
    def count(self) -> int:
        return self.buys + self.sells


@dataclass(frozen=True, slots=True)
class RunSummary:
    duration_seconds: float
    quote_currency: str
    base_currency: str
    quoting_fills: FillCounts
    hedge_fills: FillCounts
    pnl_quote: dict[str, float]  # COMPONENTS and "total"
    net_exposure_base: float
    max_abs_net_exposure_base: float
    markouts: dict[str, tuple[float | None, int]]  # horizon -> (mean bps, count)
    hedge_orders: int
    hedge_rejects: int
    hedge_timeouts: int
    hedge_mean_slippage_bps: float | None
    unhedged_exposure_seconds: float


def _counts(stats: FillStats) -> FillCounts:
    return FillCounts(
        stats.buys, stats.sells, stats.maker, stats.taker, stats.volume_base, stats.volume_quote
    )


def build_run_summary(
    ledger: Ledger,
    markouts: MarkoutTracker | None,
    hedger: Hedger | None,
    duration_seconds: float,
) -> RunSummary:
    """Collect the summary at the end of a run (P&L marked at the latest fair values)."""
    means = markouts.means_bps() if markouts is not None else {}
    counts = markouts.counts() if markouts is not None else {}
    stats = hedger.stats if hedger is not None else None
    slippage = stats.slippage_bps_sum / stats.fills if stats is not None and stats.fills else None
    return RunSummary(
        duration_seconds=duration_seconds,
        quote_currency=ledger.reference.quote,
        base_currency=ledger.reference.base,
        quoting_fills=_counts(ledger.quote_stats),
        hedge_fills=_counts(ledger.hedge_stats),
        pnl_quote=ledger.pnl().as_floats(),
        net_exposure_base=ledger.net_exposure_base,
        max_abs_net_exposure_base=ledger.max_abs_net_exposure_base,
        markouts={label: (means[label], counts[label]) for label in means},
        hedge_orders=stats.orders if stats is not None else 0,
        hedge_rejects=stats.rejects if stats is not None else 0,
        hedge_timeouts=stats.timeouts if stats is not None else 0,
        hedge_mean_slippage_bps=slippage,
        unhedged_exposure_seconds=(stats.unhedged_exposure_ns / _NS if stats is not None else 0.0),
    )


def _rows(s: RunSummary) -> list[tuple[str, str, str]]:
    base, quote = s.base_currency, s.quote_currency
    q, h = s.quoting_fills, s.hedge_fills
    rows = [
        ("fills", "quoting: buy / sell", f"{q.buys} / {q.sells}"),
        ("", "quoting: maker / taker", f"{q.maker} / {q.taker}"),
        ("", "hedge: buy / sell", f"{h.buys} / {h.sells}"),
        ("volume", f"quoting ({base})", f"{q.volume_base:.6f}"),
        ("", f"quoting ({quote})", f"{q.volume_quote:.2f}"),
        ("", f"hedge ({base})", f"{h.volume_base:.6f}"),
        ("", f"hedge ({quote})", f"{h.volume_quote:.2f}"),
    ]
    first = True
    for component in (*COMPONENTS, "total"):
        label = f"P&L ({quote})" if first else ""
        first = False
        rows.append((label, component, f"{s.pnl_quote[component]:.4f}"))
    rows += [
        ("exposure", f"net at end ({base})", f"{s.net_exposure_base:.6f}"),
        ("", f"max |net| ({base})", f"{s.max_abs_net_exposure_base:.6f}"),
    ]
    first = True
    for horizon, (mean, count) in s.markouts.items():
        label = "markouts (bps)" if first else ""
        first = False
        value = "n/a" if mean is None else f"{mean:+.3f}"
        rows.append((label, f"mean at {horizon} (n={count})", value))
    slippage = s.hedge_mean_slippage_bps
    rows += [
        ("hedging", "orders", str(s.hedge_orders)),
        ("", "rejected / timed out", f"{s.hedge_rejects} / {s.hedge_timeouts}"),
        ("", f"cost ({quote})", f"{s.pnl_quote['hedge_cost']:.4f}"),
        ("", "mean slippage (bps)", "n/a" if slippage is None else f"{slippage:+.3f}"),
        ("", "unhedged exposure (s)", f"{s.unhedged_exposure_seconds:.1f}"),
    ]
    return rows


def render_summary(summary: RunSummary) -> str:
    """The summary as an aligned plain-text table (no trailing newline)."""
    rows = _rows(summary)
    w_section = max(len(r[0]) for r in rows)
    w_item = max(len(r[1]) for r in rows)
    w_value = max(len(r[2]) for r in rows)
    title = f"run summary: {summary.duration_seconds:.1f} s"
    rule = "-" * (w_section + w_item + w_value + 4)
    lines = [title, rule]
    for section, item, value in rows:
        if section and len(lines) > 2:
            lines.append(rule)
        lines.append(f"{section:<{w_section}}  {item:<{w_item}}  {value:>{w_value}}")
    lines.append(rule)
    return "\n".join(lines)


def summary_to_dict(summary: RunSummary) -> dict[str, Any]:
    """The summary as JSON-ready data."""

    def counts(c: FillCounts) -> dict[str, Any]:
        return {
            "count": c.count,
            "buys": c.buys,
            "sells": c.sells,
            "maker": c.maker,
            "taker": c.taker,
            "volume_base": c.volume_base,
            "volume_quote": c.volume_quote,
        }

    return {
        "duration_seconds": summary.duration_seconds,
        "base_currency": summary.base_currency,
        "quote_currency": summary.quote_currency,
        "fills": {"quoting": counts(summary.quoting_fills), "hedge": counts(summary.hedge_fills)},
        "pnl_quote": dict(summary.pnl_quote),
        "net_exposure_base": summary.net_exposure_base,
        "max_abs_net_exposure_base": summary.max_abs_net_exposure_base,
        "markouts_bps": {
            horizon: {"mean": mean, "count": count}
            for horizon, (mean, count) in summary.markouts.items()
        },
        "hedging": {
            "orders": summary.hedge_orders,
            "rejects": summary.hedge_rejects,
            "timeouts": summary.hedge_timeouts,
            "cost_quote": summary.pnl_quote["hedge_cost"],
            "mean_slippage_bps": summary.hedge_mean_slippage_bps,
            "unhedged_exposure_seconds": summary.unhedged_exposure_seconds,
        },
    }
