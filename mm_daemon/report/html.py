"""The run report: one self-contained HTML page from a `RunData`.

`render_run_report(data, path)` writes it; `run_report_html(data)` returns it. The page has a
header (mode, instance, markets, venues, time span, key figures), the config that ran (folded),
a portfolio section when there are several markets, and per market: its run summary as the
daemon prints it, then P&L over time by component, net exposure against the inventory limit and
the hedge threshold with the hedges, quotes against fair value and the touch with the fills,
markouts by horizon and side, distributions of fill size, spread capture and hedge slippage, and
the risk state and pauses over time (the charts are built in `charts` and `distributions`).

Figures in tables and cards come from the run summaries unchanged; only drawn series are
thinned, so a multi-day run stays quick to open.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mm_daemon.core.summary import RunSummary
from mm_daemon.report import charts, distributions
from mm_daemon.report.charts import tracked_components, utc
from mm_daemon.report.data import PNL_COMPONENTS, MarketRun, RunData
from mm_daemon.report.page import COMPONENT_LABELS, Page, esc, fmt, table

__all__ = [
    "MARKET_CHARTS",
    "PORTFOLIO_CHARTS",
    "render_run_report",
    "run_report_html",
    "summary_grid",
]

MARKET_CHARTS = ("pnl", "exposure", "quotes", "markouts", "distributions", "risk")
"""The charts of each market's section, by their `data-chart` name."""
PORTFOLIO_CHARTS = ("portfolio-pnl", "portfolio-components", "portfolio-exposure")
"""The charts of the portfolio section (a run with several markets, one quote currency)."""


def render_run_report(data: RunData, path: Path) -> Path:
    """Write the report of `data` to `path` (one HTML file); return the path."""
    path.write_text(run_report_html(data), encoding="utf-8")
    return path


def run_report_html(data: RunData) -> str:
    """The report of `data` as one self-contained HTML page."""
    page = Page(data.title or f"mm-daemon {data.mode} run: {data.instance}")
    page.add(_run_header(data))
    if data.note:
        page.add(f'<p class="run-note" data-key="run.note">{esc(data.note)}</p>')
    for name, why in data.failed_markets:
        page.add(
            f'<p class="run-note" data-key="run.failed.{esc(name)}">Market {esc(name)} '
            f"did not trade: {esc(why)}</p>"
        )
    page.add(_cards(data))
    page.add(
        '<details class="config"><summary>Config that ran</summary>'
        f"<pre>{esc(data.config_text)}</pre></details>"
    )
    if len(data.markets) > 1:
        _portfolio_section(page, data)
    for market in data.markets:
        _market_section(page, data, market)
    return page.html()


# -- header ----------------------------------------------------------------------------------


def _duration_text(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d} ({seconds:,.1f} s)"


def _anchor(market: MarketRun) -> str:
    return "market-" + "".join(c if c.isalnum() else "-" for c in market.market)


def _run_header(data: RunData) -> str:
    markets = ", ".join(
        f"{m.symbol} on {m.venue}"
        + (f" (hedge {m.hedge_symbol} on {m.hedge_venue})" if m.hedge_venue else "")
        for m in data.markets
    )
    meta = [
        ("instance", data.instance),
        ("venues", ", ".join(data.venues)),
        ("markets", markets),
        ("from", utc(data.started_ns)),
        ("to", utc(data.ended_ns)),
    ]
    meta_html = "".join(f"<span>{esc(k)} <b>{esc(v)}</b></span>" for k, v in meta)
    meta_html += (
        f'<span>duration <b data-key="run.duration_seconds">'
        f"{esc(_duration_text(data.duration_seconds))}</b></span>"
    )
    nav = ""
    if len(data.markets) > 1:
        links = "".join(f'<a href="#{_anchor(m)}">{esc(m.market)}</a>' for m in data.markets)
        nav = f'<nav class="markets"><a href="#portfolio">portfolio</a>{links}</nav>'
    title = data.title or "run report"
    return (
        f'<header class="run"><h1>{esc(title)}<span class="badge" data-key="run.mode">'
        f'{esc(data.mode)}</span></h1><div class="meta">{meta_html}</div>{nav}</header>'
    )


def _sign_class(value: float | None) -> str:
    if value is None or value == 0:
        return ""
    return "pos" if value > 0 else "neg"


def _card(key: str, label: str, text: str, unit: str = "", css: str = "") -> str:
    unit_html = f'<span class="unit">{esc(unit)}</span>' if unit else ""
    return (
        f'<div class="card"><div class="label">{esc(label)}</div>'
        f'<div class="value {css}"><span data-key="{esc(key)}">{esc(text)}</span>'
        f"{unit_html}</div></div>"
    )


def _single_quote_currency(data: RunData) -> str | None:
    currencies = {m.quote_currency for m in data.markets}
    return currencies.pop() if len(currencies) == 1 else None


def _one_market_per_asset(data: RunData) -> list[MarketRun]:
    """The first market of each base asset (each carries its asset's hedging figures)."""
    first: dict[str, MarketRun] = {}
    for market in data.markets:
        first.setdefault(market.base_currency, market)
    return list(first.values())


def _total_pnl(data: RunData) -> dict[str, float]:
    """The whole run's P&L by component: the run summary's; without one, the assets' whole
    ledgers at their last snapshots (markets and hedges), or else the markets added up."""
    names = (*PNL_COMPONENTS, "total")
    if data.summary is not None:
        return {name: data.summary.pnl_quote.get(name, 0.0) for name in names}
    if data.assets:
        return {
            name: sum(a.snapshots[-1].pnl.component(name) for a in data.assets if a.snapshots)
            for name in names
        }
    return {name: sum(m.summary.pnl_quote.get(name, 0.0) for m in data.markets) for name in names}


def _cards(data: RunData) -> str:
    """The figures a quant looks at first: the run summary's, over every market."""
    whole = data.summary
    summaries = [m.summary for m in data.markets]
    quote = _single_quote_currency(data)
    cards = []
    if quote is not None:
        pnl = _total_pnl(data)
        total, spread = pnl["total"], pnl["spread_capture"]
        volume = (
            whole.quoting_fills.volume_quote
            if whole is not None
            else sum(s.quoting_fills.volume_quote for s in summaries)
        )
        cards += [
            _card("card.pnl.total", "P&L total", fmt(total, 2), quote, _sign_class(total)),
            _card("card.pnl.spread_capture", "spread capture", fmt(spread, 2), quote),
            _card("card.volume_quote", "volume traded", fmt(volume, 0), quote),
        ]
    fills = (
        whole.quoting_fills.count
        if whole is not None
        else sum(s.quoting_fills.count for s in summaries)
    )
    hedges = (
        whole.hedge_orders
        if whole is not None
        else sum(m.summary.hedge_orders for m in _one_market_per_asset(data))
    )
    cards.append(_card("card.fills", "quoting fills", fmt(fills, 0)))
    cards.append(_card("card.hedges", "hedge orders", fmt(hedges, 0)))
    if len(data.markets) == 1:
        s = whole if whole is not None else summaries[0]
        cards.append(
            _card(
                "card.max_abs_net_exposure",
                "max |net exposure|",
                fmt(s.max_abs_net_exposure_base, 4),
                s.base_currency,
            )
        )
    return f'<div class="cards">{"".join(cards)}</div>'


# -- the run summary of one market -------------------------------------------------------------


def _kv_table(rows: Iterable[tuple[str, str, str, str]]) -> str:
    """(label, key, text, css) rows as a two-column table with the value keyed for lookups."""
    cells = []
    for label, key, text, css in rows:
        attrs = {"data-key": key}
        if css:
            attrs["class"] = css
        cells.append([(label, {}), (text, attrs)])
    return table(("", ""), cells, css_class="kv")


def summary_grid(summary: RunSummary, key_prefix: str) -> str:
    """The run summary as the daemon prints it, in groups; each value has a `data-key`."""
    s, p = summary, key_prefix
    base, quote = s.base_currency, s.quote_currency
    q, h = s.quoting_fills, s.hedge_fills
    groups: list[tuple[str, str]] = []
    groups.append(
        (
            "Fills",
            _kv_table(
                [
                    ("quoting buys", f"{p}fills.quoting.buys", fmt(q.buys, 0), ""),
                    ("quoting sells", f"{p}fills.quoting.sells", fmt(q.sells, 0), ""),
                    ("quoting maker", f"{p}fills.quoting.maker", fmt(q.maker, 0), ""),
                    ("quoting taker", f"{p}fills.quoting.taker", fmt(q.taker, 0), ""),
                    ("hedge buys", f"{p}fills.hedge.buys", fmt(h.buys, 0), ""),
                    ("hedge sells", f"{p}fills.hedge.sells", fmt(h.sells, 0), ""),
                ]
            ),
        )
    )
    groups.append(
        (
            "Volume",
            _kv_table(
                [
                    (f"quoting ({base})", f"{p}volume.quoting.base", fmt(q.volume_base, 6), ""),
                    (f"quoting ({quote})", f"{p}volume.quoting.quote", fmt(q.volume_quote, 2), ""),
                    (f"hedge ({base})", f"{p}volume.hedge.base", fmt(h.volume_base, 6), ""),
                    (f"hedge ({quote})", f"{p}volume.hedge.quote", fmt(h.volume_quote, 2), ""),
                ]
            ),
        )
    )
    pnl_rows = []
    for name in (*PNL_COMPONENTS, "total"):
        value = s.pnl_quote.get(name)
        pnl_rows.append(
            (COMPONENT_LABELS[name], f"{p}pnl.{name}", fmt(value, 4), _sign_class(value))
        )
    groups.append((f"P&L ({quote})", _kv_table(pnl_rows)))
    groups.append(
        (
            "Exposure",
            _kv_table(
                [
                    (
                        f"net at end ({base})",
                        f"{p}exposure.net_end",
                        fmt(s.net_exposure_base, 6),
                        "",
                    ),
                    (
                        f"max |net| ({base})",
                        f"{p}exposure.max_abs",
                        fmt(s.max_abs_net_exposure_base, 6),
                        "",
                    ),
                ]
            ),
        )
    )
    markout_rows = [
        [
            (horizon, {}),
            (fmt(mean, 3, signed=True), {"data-key": f"{p}markouts.{horizon}.mean"}),
            (fmt(count, 0), {"data-key": f"{p}markouts.{horizon}.count"}),
        ]
        for horizon, (mean, count) in s.markouts.items()
    ]
    groups.append(("Markouts", table(("horizon", "mean (bps)", "fills"), markout_rows)))
    slippage = s.hedge_mean_slippage_bps
    groups.append(
        (
            "Hedging",
            _kv_table(
                [
                    ("orders", f"{p}hedging.orders", fmt(s.hedge_orders, 0), ""),
                    ("rejected", f"{p}hedging.rejects", fmt(s.hedge_rejects, 0), ""),
                    ("timed out", f"{p}hedging.timeouts", fmt(s.hedge_timeouts, 0), ""),
                    (
                        f"cost ({quote})",
                        f"{p}hedging.cost",
                        fmt(s.pnl_quote["hedge_cost"], 4),
                        _sign_class(s.pnl_quote["hedge_cost"]),
                    ),
                    (
                        "mean slippage (bps)",
                        f"{p}hedging.mean_slippage_bps",
                        fmt(slippage, 3, signed=True),
                        "",
                    ),
                    (
                        "unhedged exposure (s)",
                        f"{p}hedging.unhedged_seconds",
                        fmt(s.unhedged_exposure_seconds, 1),
                        "",
                    ),
                ]
            ),
        )
    )
    inner = "".join(f"<div><h4>{esc(title)}</h4>{body}</div>" for title, body in groups)
    return f'<div class="summary-grid">{inner}</div>'


def _market_section(page: Page, data: RunData, market: MarketRun) -> None:
    key_prefix = f"{market.market}:"
    hedge = (
        f" · hedged on {market.hedge_venue} {market.hedge_symbol}, threshold "
        f"{market.hedge_threshold_base:g} {market.base_currency}"
        if market.hedge_venue and market.hedge_threshold_base is not None
        else " · not hedged"
    )
    sub = (
        f"{market.symbol} quoted on {market.venue}{hedge} · inventory limit "
        f"{market.inventory_limit_base:g} {market.base_currency} · "
        f"{len(market.snapshots):,} snapshots, {len(market.fills):,} fills"
    )
    page.add(
        f'<section class="block" id="{_anchor(market)}" data-market="{esc(market.market)}">'
        f'<h2>{esc(market.market)}</h2><p class="sub">{esc(sub)}</p>'
        + summary_grid(market.summary, key_prefix)
    )
    quote = market.quote_currency
    page.chart(
        "pnl",
        charts.pnl_figure(data, market),
        title=f"P&L over time by component ({quote})",
        caption="Marked at fair value every second; the components add up to the total. "
        + (
            "This market's own fills: its asset's hedge is in the portfolio section. "
            if len(data.markets) > 1 and data.assets
            else ""
        )
        + "Click a legend entry to hide or isolate it.",
    )
    page.chart(
        "exposure",
        charts.exposure_figure(data, market),
        title=f"Net exposure ({market.base_currency}) against the limits, with hedges",
        caption="Net exposure of the asset across venues; triangles are hedges (up: bought, "
        "down: sold), crosses hedges that did not fill.",
    )
    figure, caption = charts.quotes_figure(data, market)
    page.chart(
        "quotes",
        figure,
        title=f"Quotes against fair value and the touch ({quote})",
        caption=caption,
        autoscale_y=True,
    )
    figure, caption = distributions.markouts_figure(market)
    page.chart("markouts", figure, title="Markouts by horizon and side (bps)", caption=caption)
    page.chart(
        "distributions",
        distributions.distributions_figure(market),
        title="Distributions",
        caption="Edges of the outer bins include the 0.5% tails.",
    )
    figure, caption = charts.risk_figure(data, market)
    page.chart("risk", figure, title="Risk state and pauses", caption=caption)
    page.add("</section>")


# -- portfolio -------------------------------------------------------------------------------


def _portfolio_table(data: RunData, quote: str | None) -> str:
    components = tracked_components(
        [m.summary for m in data.markets] + ([data.summary] if data.summary else [])
    )
    headers = [
        "market",
        "fills",
        f"volume ({quote or 'quote'})",
        *(COMPONENT_LABELS[c] for c in components),
        "P&L total",
        "max |net|",
        "hedges",
    ]
    rows = []
    for market in data.markets:
        s = market.summary
        prefix = f"portfolio.{market.market}."
        row = [
            (market.market, {}),
            (fmt(s.quoting_fills.count, 0), {"data-key": prefix + "fills"}),
            (fmt(s.quoting_fills.volume_quote, 2), {"data-key": prefix + "volume_quote"}),
        ]
        for name in (*components, "total"):
            value = s.pnl_quote.get(name)
            attrs = {"data-key": f"{prefix}pnl.{name}"}
            if css := _sign_class(value):
                attrs["class"] = css
            row.append((fmt(value, 4), attrs))
        row += [
            (
                f"{fmt(s.max_abs_net_exposure_base, 6)} {s.base_currency}",
                {"data-key": prefix + "max_abs_net_exposure"},
            ),
            (fmt(s.hedge_orders, 0), {"data-key": prefix + "hedges"}),
        ]
        rows.append(row)
    total: list[tuple[str, dict[str, str]]] | None = None
    if quote is not None:
        summaries = [m.summary for m in data.markets]
        whole = data.summary
        pnl = _total_pnl(data)
        if data.summary is not None or data.assets:
            # The hedge instruments' P&L is the assets', not any market's: the whole less the
            # markets' own.
            hedging: list[tuple[str, dict[str, str]]] = [("hedges", {}), ("", {}), ("", {})]
            for name in (*components, "total"):
                value = pnl[name] - sum(s.pnl_quote.get(name, 0.0) for s in summaries)
                attrs = {"data-key": f"portfolio.hedges.pnl.{name}"}
                if css := _sign_class(value):
                    attrs["class"] = css
                hedging.append((fmt(value, 4), attrs))
            hedging += [("", {}), ("", {})]
            rows.append(hedging)
        total = [
            ("portfolio", {}),
            (
                fmt(
                    whole.quoting_fills.count
                    if whole is not None
                    else sum(s.quoting_fills.count for s in summaries),
                    0,
                ),
                {"data-key": "portfolio.total.fills"},
            ),
            (
                fmt(
                    whole.quoting_fills.volume_quote
                    if whole is not None
                    else sum(s.quoting_fills.volume_quote for s in summaries),
                    2,
                ),
                {"data-key": "portfolio.total.volume_quote"},
            ),
        ]
        for name in (*components, "total"):
            value = pnl[name]
            attrs = {"data-key": f"portfolio.total.pnl.{name}"}
            if css := _sign_class(value):
                attrs["class"] = css
            total.append((fmt(value, 4), attrs))
        hedges = (
            whole.hedge_orders
            if whole is not None
            else sum(m.summary.hedge_orders for m in _one_market_per_asset(data))
        )
        total += [("", {}), (fmt(hedges, 0), {"data-key": "portfolio.total.hedges"})]
    body = table(headers, rows, total=total)
    return f'<div class="table-scroll">{body}</div>'


def _portfolio_section(page: Page, data: RunData) -> None:
    quote = _single_quote_currency(data)
    page.add(
        '<section class="block" id="portfolio"><h2>Portfolio</h2>'
        f'<p class="sub">{len(data.markets)} markets'
        + (f", P&amp;L in {esc(quote)}" if quote else ", quoted in different currencies")
        + "</p>"
        + _portfolio_table(data, quote)
    )
    page.chart(
        "portfolio-pnl",
        charts.portfolio_pnl_figure(data, quote),
        title="P&L over time by market",
        caption=(
            "Each market's own fills, marked at its fair value; a hedge line is an asset's "
            "hedge instrument (its whole ledger less its markets); the portfolio line is every "
            "asset's whole ledger added up."
            if data.assets
            else "Each market marked at its own fair value"
            + ("; the portfolio line is their sum." if quote else ".")
        ),
    )
    if quote is not None:
        page.chart(
            "portfolio-components",
            charts.portfolio_components_figure(data, quote),
            title=f"Portfolio P&L by component ({quote})",
            caption=(
                "Every asset's whole ledger (its markets and its hedge) added up."
                if data.assets
                else "Every market's components added up."
            ),
        )
    page.chart(
        "portfolio-exposure",
        charts.portfolio_exposure_figure(data, quote),
        title="Net exposure per asset, at fair value",
        caption="Each asset's net exposure across its markets and venues, times its fair value.",
    )
    page.add("</section>")
