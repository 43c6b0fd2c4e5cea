"""What the report tests check on a page: its figures against a run summary, its screenshot."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from mm_daemon.core.summary import RunSummary

__all__ = [
    "figure_mismatches",
    "matches_display",
    "png_size",
    "run_summary_figures",
    "summary_figures",
]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def summary_figures(prefix: str, s: RunSummary) -> dict[str, float | None]:
    """What the page must show of one run summary, by the page's data-key."""
    figures: dict[str, float | None] = {
        "fills.quoting.buys": s.quoting_fills.buys,
        "fills.quoting.sells": s.quoting_fills.sells,
        "fills.quoting.maker": s.quoting_fills.maker,
        "fills.quoting.taker": s.quoting_fills.taker,
        "fills.hedge.buys": s.hedge_fills.buys,
        "fills.hedge.sells": s.hedge_fills.sells,
        "volume.quoting.base": s.quoting_fills.volume_base,
        "volume.quoting.quote": s.quoting_fills.volume_quote,
        "volume.hedge.base": s.hedge_fills.volume_base,
        "volume.hedge.quote": s.hedge_fills.volume_quote,
        "exposure.net_end": s.net_exposure_base,
        "exposure.max_abs": s.max_abs_net_exposure_base,
        "hedging.orders": s.hedge_orders,
        "hedging.rejects": s.hedge_rejects,
        "hedging.timeouts": s.hedge_timeouts,
        "hedging.cost": s.pnl_quote["hedge_cost"],
        "hedging.mean_slippage_bps": s.hedge_mean_slippage_bps,
        "hedging.unhedged_seconds": s.unhedged_exposure_seconds,
        "pnl.funding": s.pnl_quote.get("funding"),
    }
    for name, value in s.pnl_quote.items():
        figures[f"pnl.{name}"] = value
    for horizon, (mean, count) in s.markouts.items():
        figures[f"markouts.{horizon}.mean"] = mean
        figures[f"markouts.{horizon}.count"] = count
    return {prefix + key: value for key, value in figures.items()}


def matches_display(text: str, value: float | None) -> bool:
    """The text shows the value to its last printed digit (n/a for no value)."""
    if value is None:
        return text == "n/a"
    number = re.fullmatch(r"[+-]?[\d,]+(\.(\d+))?", text)
    if number is None:
        return False
    decimals = len(number.group(2) or "")
    return abs(float(text.replace(",", "")) - value) <= 0.5 * 10**-decimals + 1e-9


def run_summary_figures(summary: RunSummary, markets: list[str]) -> dict[str, float | None]:
    """What a journaled run's page must show: the header cards from the run summary, and
    each market's section from its summary (the whole run's when there is one market, as the
    daemon prints it)."""
    figures: dict[str, float | None] = {
        "card.pnl.total": summary.pnl_quote["total"],
        "card.pnl.spread_capture": summary.pnl_quote["spread_capture"],
        "card.volume_quote": summary.quoting_fills.volume_quote,
        "card.fills": summary.quoting_fills.count,
        "card.hedges": summary.hedge_orders,
    }
    if len(markets) == 1:
        figures["card.max_abs_net_exposure"] = summary.max_abs_net_exposure_base
        figures |= summary_figures(f"{markets[0]}:", summary)
    else:
        for name, market in summary.markets:
            figures |= summary_figures(f"{name}:", market)
    return figures


def figure_mismatches(
    shown: dict[str, str], expected: dict[str, float | None]
) -> tuple[list[str], dict[str, tuple[str, float | None]]]:
    """(keys the page lacks, {key: (shown, expected)} for figures shown wrong)."""
    missing = sorted(set(expected) - set(shown))
    wrong = {
        key: (shown[key], value)
        for key, value in expected.items()
        if key in shown and not matches_display(shown[key], value)
    }
    return missing, wrong
