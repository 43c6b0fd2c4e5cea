"""The comparison page of a parameter sweep: one self-contained HTML file.

`render_sweep_report(results, path)` writes it from one `SweepResult` per combination (its
values by config path, its run summary as `summary_to_dict` gives it, and its P&L curve). The
page has a table with a row per combination that sorts on a header click, P&L total against each
swept parameter (one line per setting of the other parameters), and every combination's P&L curve
overlaid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mm_daemon.report.data import PNL_COMPONENTS, SweepResult
from mm_daemon.report.page import (
    COMPONENT_LABELS,
    PALETTE,
    Page,
    axis,
    base_layout,
    esc,
    fmt,
)
from mm_daemon.report.series import downsample_minmax

__all__ = ["render_sweep_report", "sweep_report_html"]

_NS = 1_000_000_000
_CURVE_POINTS = 1500  # per combination: many curves share one chart


def render_sweep_report(results: Sequence[SweepResult], path: Path, title: str = "") -> Path:
    """Write the comparison page of `results` to `path`; return the path."""
    path.write_text(sweep_report_html(results, title), encoding="utf-8")
    return path


def sweep_report_html(results: Sequence[SweepResult], title: str = "") -> str:
    """The comparison page of a sweep's results, one per combination."""
    if not results:
        raise ValueError("a sweep report needs at least one combination")
    params = list(results[0].values)
    page = Page(title or "mm-daemon sweep")
    page.add(_header(results, params, title))
    page.add(_table(results, params))
    quote = _quote_currency(results)
    page.add('<section class="block"><h2>P&amp;L against the parameters</h2>')
    for param in params:
        page.chart(
            f"pnl-vs-{param}",
            _against_parameter(results, params, param, quote),
            title=f"P&L total against {param}",
            caption=(
                "One line per setting of the other parameters."
                if len(params) > 1
                else "One point per value."
            ),
        )
    page.add("</section>")
    page.add('<section class="block"><h2>P&amp;L curves</h2>')
    page.chart(
        "pnl-curves",
        _curves(results, quote),
        title="P&L over time, every combination",
        caption="Hover a line for its combination; click legend entries to hide them.",
    )
    page.add("</section>")
    return page.html()


def _quote_currency(results: Sequence[SweepResult]) -> str:
    return str(results[0].summary.get("quote_currency", "quote"))


def _label(values: Mapping[str, str]) -> str:
    return " ".join(f"{path}={value}" for path, value in values.items())


def _total(result: SweepResult) -> float | None:
    value = result.summary.get("pnl_quote", {}).get("total")
    return None if value is None else float(value)


def _header(results: Sequence[SweepResult], params: list[str], title: str) -> str:
    axes = "".join(
        f"<span>{esc(p)} <b>{esc(', '.join(dict.fromkeys(r.values[p] for r in results)))}</b>"
        "</span>"
        for p in params
    )
    ranked = sorted((r for r in results if _total(r) is not None), key=lambda r: _total(r) or 0.0)
    best = ""
    if ranked:
        top = ranked[-1]
        best = (
            f'<span>best <b data-key="sweep.best">{esc(_label(top.values))}</b> '
            f"({esc(fmt(_total(top), 2))} {esc(_quote_currency(results))})</span>"
        )
    return (
        f'<header class="run"><h1>{esc(title or "Parameter sweep")}'
        f'<span class="badge">{len(results)} combinations</span></h1>'
        f'<div class="meta">{axes}{best}</div></header>'
    )


def _columns(results: Sequence[SweepResult]) -> list[tuple[str, str, int, Any]]:
    """(header, key, decimals, getter) of the figure columns."""
    first = results[0].summary
    components = [c for c in PNL_COMPONENTS if c in first.get("pnl_quote", {})]
    columns: list[tuple[str, str, int, Any]] = [
        ("P&L total", "pnl.total", 2, lambda s: s["pnl_quote"]["total"]),
    ]
    columns += [
        (COMPONENT_LABELS[c], f"pnl.{c}", 2, lambda s, c=c: s["pnl_quote"][c]) for c in components
    ]
    columns += [
        ("fills", "fills", 0, lambda s: s["fills"]["quoting"]["count"]),
        ("volume", "volume_quote", 0, lambda s: s["fills"]["quoting"]["volume_quote"]),
        ("max |net|", "max_abs_net_exposure", 4, lambda s: s["max_abs_net_exposure_base"]),
    ]
    for horizon in first.get("markouts_bps", {}):
        columns.append(
            (
                f"markout {horizon}",
                f"markouts.{horizon}",
                2,
                lambda s, h=horizon: s["markouts_bps"][h]["mean"],
            )
        )
    columns.append(("hedges", "hedges", 0, lambda s: s["hedging"]["orders"]))
    return columns


def _table(results: Sequence[SweepResult], params: list[str]) -> str:
    columns = _columns(results)
    quote = _quote_currency(results)
    head = "".join(f'<th class="param">{esc(p)}</th>' for p in params)
    head += "".join(f"<th>{esc(h)}</th>" for h, _, _, _ in columns)
    rows = []
    for result in results:
        cells = [
            f'<td class="param" data-key="param.{esc(p)}">{esc(result.values[p])}</td>'
            for p in params
        ]
        for _, key, digits, getter in columns:
            try:
                value = getter(result.summary)
            except (KeyError, TypeError):
                value = None
            sort = "" if value is None else repr(float(value))
            css = ""
            if key.startswith("pnl.") and value:
                css = ' class="pos"' if value > 0 else ' class="neg"'
            cells.append(
                f'<td data-key="{esc(key)}" data-sort="{sort}"{css}>'
                f"{esc(fmt(value, digits, signed=key.startswith('markouts.')))}</td>"
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<section class="block"><h2>Combinations</h2>'
        f'<p class="sub">P&amp;L in {esc(quote)}, volume in {esc(quote)}, max |net| in base units, '
        "markouts in bps. Click a column header to sort by it (again to reverse).</p>"
        '<div class="table-scroll"><table class="sortable figures" data-table="sweep">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _numeric(values: Sequence[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def _against_parameter(
    results: Sequence[SweepResult], params: list[str], param: str, quote: str
) -> dict[str, Any]:
    others = [p for p in params if p != param]
    order = list(dict.fromkeys(r.values[param] for r in results))
    numbers = _numeric(order)
    groups: dict[str, list[SweepResult]] = {}
    for result in results:
        key = _label({p: result.values[p] for p in others}) or "P&L total"
        groups.setdefault(key, []).append(result)
    traces = []
    for i, (name, group) in enumerate(groups.items()):
        members = sorted(group, key=lambda r: order.index(r.values[param]))
        xs: list[Any] = [
            float(r.values[param]) if numbers is not None else r.values[param] for r in members
        ]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": xs,
                "y": [_total(r) for r in members],
                "line": {"color": PALETTE[i % len(PALETTE)], "width": 2},
                "marker": {"size": 8},
                "hovertemplate": f"{esc(param)}=%{{x}}: %{{y:,.2f}} {esc(quote)}"
                f"<extra>{esc(name)}</extra>",
            }
        )
    x_axis = axis(param) if numbers is not None else axis(param, type="category")
    if numbers is not None and len(set(numbers)) <= 12:
        x_axis["tickvals"] = sorted(set(numbers))
    return {
        "data": traces,
        "layout": base_layout(
            340,
            hovermode="closest",
            xaxis=x_axis,
            yaxis=axis(f"P&L total ({quote})", zeroline=True),
        ),
    }


def _curves(results: Sequence[SweepResult], quote: str) -> dict[str, Any]:
    longest = max(
        ((r.pnl_series[-1][0] - r.pnl_series[0][0]) for r in results if r.pnl_series),
        default=0,
    )
    in_minutes = longest > 600 * _NS
    unit = 60 * _NS if in_minutes else _NS
    traces = []
    for i, result in enumerate(results):
        series = result.pnl_series
        start = series[0][0] if series else 0
        xs = [round((ts - start) / unit * 1e3) for ts, _ in series]  # thousandths, exact enough
        x, y = downsample_minmax(xs, [v for _, v in series], _CURVE_POINTS)
        label = _label(result.values)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": label,
                "x": [v / 1e3 for v in x],
                "y": y,
                "line": {"color": PALETTE[i % len(PALETTE)], "width": 1.6},
                "hovertemplate": f"%{{y:,.2f}} {esc(quote)}<extra>{esc(label)}</extra>",
            }
        )
    layout = base_layout(
        440,
        hovermode="closest",
        xaxis=axis("time since start (min)" if in_minutes else "time since start (s)"),
        yaxis=axis(f"P&L total ({quote})", zeroline=True),
    )
    layout["legend"] = {"orientation": "v", "x": 1.01, "xanchor": "left", "y": 1}
    layout["margin"] = {"l": 72, "r": 16, "t": 24, "b": 48}
    return {"data": traces, "layout": layout}
