"""The end-of-run summary: fills, volume, P&L by component, exposure, markouts, hedging.

`build_run_summary` collects it for one ledger (one quoted market and its hedge);
`build_portfolio_summary` for several markets: one summary per market (its own fills, P&L,
markouts; its asset's exposure and hedging) inside one for the whole portfolio (every fill,
the P&L of every ledger, each asset's exposure). `render_summary` turns it into aligned
plain-text tables; `summary_to_dict` into JSON-ready data (the portfolio's figures at the top,
each market's under "markets"), and `summary_from_dict` back (a journal keeps the JSON). All
pure: the caller prints or writes the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mm_daemon.core.inventory import FillStats
from mm_daemon.core.markouts import horizon_seconds
from mm_daemon.core.pnl import COMPONENTS

if TYPE_CHECKING:
    from mm_daemon.core.hedging import Hedger
    from mm_daemon.core.inventory import Ledger
    from mm_daemon.core.markouts import MarkoutTracker

__all__ = [
    "AssetRecord",
    "MarketRecord",
    "RunSummary",
    "build_portfolio_summary",
    "build_run_summary",
    "render_summary",
    "summary_from_dict",
    "summary_to_dict",
]

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
    # asset -> (net exposure at the end, max |net exposure|), base units of that asset
    exposure_by_asset: dict[str, tuple[float, float]] = field(default_factory=dict)
    markets: tuple[tuple[str, RunSummary], ...] = ()  # name -> its own summary (portfolio)
    failed_markets: tuple[tuple[str, str], ...] = ()  # configured, did not start: name, why


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
        exposure_by_asset={
            ledger.reference.base: (ledger.net_exposure_base, ledger.max_abs_net_exposure_base)
        },
    )


@dataclass(frozen=True, slots=True)
class MarketRecord:
    """What the summary needs of one quoted market."""

    name: str
    venue: str
    symbol: str
    markouts: MarkoutTracker | None


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """What the summary needs of one asset: its ledger, its hedger, its markets."""

    ledger: Ledger
    hedger: Hedger | None
    markets: tuple[MarketRecord, ...]


def build_portfolio_summary(assets: list[AssetRecord], duration_seconds: float) -> RunSummary:
    """One summary per market inside the portfolio's (see the module doc)."""
    markets: list[tuple[str, RunSummary]] = []
    quoting = FillStats()
    hedging = FillStats()
    pnl = dict.fromkeys((*COMPONENTS, "total"), 0.0)
    exposure: dict[str, tuple[float, float]] = {}
    orders = rejects = timeouts = hedge_fills = 0
    slippage_sum = unhedged = 0.0
    for asset in assets:
        ledger = asset.ledger
        whole = build_run_summary(ledger, None, asset.hedger, duration_seconds)
        for market in asset.markets:
            key = (market.venue, market.symbol)
            own = replace(
                build_run_summary(ledger, market.markouts, asset.hedger, duration_seconds),
                quoting_fills=_counts(ledger.stats_by_instrument[key]),
                pnl_quote=ledger.pnl((key,)).as_floats(),
            )
            markets.append((market.name, own))
            quoting = quoting.plus(ledger.stats_by_instrument[key])
        hedging = hedging.plus(ledger.hedge_stats)
        for name, value in whole.pnl_quote.items():
            pnl[name] += value
        exposure.update(whole.exposure_by_asset)
        orders += whole.hedge_orders
        rejects += whole.hedge_rejects
        timeouts += whole.hedge_timeouts
        unhedged += whole.unhedged_exposure_seconds
        if asset.hedger is not None:
            hedge_fills += asset.hedger.stats.fills
            slippage_sum += asset.hedger.stats.slippage_bps_sum
    first = assets[0].ledger.reference
    single = len(exposure) == 1
    net, max_abs = next(iter(exposure.values())) if single else (0.0, 0.0)
    return RunSummary(
        duration_seconds=duration_seconds,
        quote_currency=first.quote,
        base_currency=first.base if single else "+".join(exposure),
        quoting_fills=_counts(quoting),
        hedge_fills=_counts(hedging),
        pnl_quote=pnl,
        net_exposure_base=net,
        max_abs_net_exposure_base=max_abs,
        markouts=markets[0][1].markouts if len(markets) == 1 else {},
        hedge_orders=orders,
        hedge_rejects=rejects,
        hedge_timeouts=timeouts,
        hedge_mean_slippage_bps=slippage_sum / hedge_fills if hedge_fills else None,
        unhedged_exposure_seconds=unhedged,
        exposure_by_asset=exposure,
        markets=tuple(markets),
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
    first = True
    for asset, (net, max_abs) in (s.exposure_by_asset or {base: (0.0, 0.0)}).items():
        rows += [
            ("exposure" if first else "", f"net at end ({asset})", f"{net:.6f}"),
            ("", f"max |net| ({asset})", f"{max_abs:.6f}"),
        ]
        first = False
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
    """The summary as aligned plain-text tables (no trailing newline): the whole run's, then,
    with several markets, each market's."""
    if len(summary.markets) <= 1:
        return _table(f"run summary: {summary.duration_seconds:.1f} s", summary) + _failed_lines(
            summary
        )
    tables = [
        _table(
            f"run summary: {summary.duration_seconds:.1f} s, portfolio of "
            f"{len(summary.markets)} markets",
            summary,
        )
    ]
    tables += [_table(f"market {name}", market) for name, market in summary.markets]
    return "\n\n".join(tables) + _failed_lines(summary)


def _failed_lines(summary: RunSummary) -> str:
    return "".join(
        f"\nmarket {name} failed to start: {why}" for name, why in summary.failed_markets
    )


def _table(title: str, summary: RunSummary) -> str:
    rows = _rows(summary)
    w_section = max(len(r[0]) for r in rows)
    w_item = max(len(r[1]) for r in rows)
    w_value = max(len(r[2]) for r in rows)
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

    data: dict[str, Any] = {
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
        "exposure_by_asset": {
            asset: {"net_base": net, "max_abs_base": max_abs}
            for asset, (net, max_abs) in summary.exposure_by_asset.items()
        },
    }
    if summary.markets:
        data["markets"] = {name: summary_to_dict(m) for name, m in summary.markets}
    if summary.failed_markets:
        data["failed_markets"] = dict(summary.failed_markets)
    return data


def summary_from_dict(data: Mapping[str, Any]) -> RunSummary:
    """The summary `summary_to_dict` gave (read back from JSON): equal to the original.

    Markout horizons come back shortest first, whatever order the JSON kept its keys in.
    Raises KeyError or TypeError for data of another shape.
    """

    def counts(c: Mapping[str, Any]) -> FillCounts:
        return FillCounts(
            int(c["buys"]),
            int(c["sells"]),
            int(c["maker"]),
            int(c["taker"]),
            float(c["volume_base"]),
            float(c["volume_quote"]),
        )

    hedging = data["hedging"]
    slippage = hedging["mean_slippage_bps"]
    return RunSummary(
        duration_seconds=float(data["duration_seconds"]),
        quote_currency=str(data["quote_currency"]),
        base_currency=str(data["base_currency"]),
        quoting_fills=counts(data["fills"]["quoting"]),
        hedge_fills=counts(data["fills"]["hedge"]),
        pnl_quote={name: float(value) for name, value in data["pnl_quote"].items()},
        net_exposure_base=float(data["net_exposure_base"]),
        max_abs_net_exposure_base=float(data["max_abs_net_exposure_base"]),
        markouts={
            horizon: (None if m["mean"] is None else float(m["mean"]), int(m["count"]))
            for horizon, m in sorted(
                data["markouts_bps"].items(), key=lambda item: horizon_seconds(item[0])
            )
        },
        hedge_orders=int(hedging["orders"]),
        hedge_rejects=int(hedging["rejects"]),
        hedge_timeouts=int(hedging["timeouts"]),
        hedge_mean_slippage_bps=None if slippage is None else float(slippage),
        unhedged_exposure_seconds=float(hedging["unhedged_exposure_seconds"]),
        exposure_by_asset={
            asset: (float(e["net_base"]), float(e["max_abs_base"]))
            for asset, e in data.get("exposure_by_asset", {}).items()
        },
        markets=tuple(
            (name, summary_from_dict(market)) for name, market in data.get("markets", {}).items()
        ),
        failed_markets=tuple(
            (str(name), str(why)) for name, why in data.get("failed_markets", {}).items()
        ),
    )
