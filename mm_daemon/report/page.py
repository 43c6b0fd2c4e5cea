"""The shell every report page shares: one self-contained HTML file.

plotly.js (from the plotly package) is inlined, each chart's figure is a JSON block beside its
`<div>`, and a small script draws them all; nothing is fetched when the page opens. The look
(fonts, colors per P&L component and side, axis styling) is defined here once.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

__all__ = [
    "COMPONENT_COLORS",
    "COMPONENT_LABELS",
    "PALETTE",
    "SIDE_COLORS",
    "Page",
    "axis",
    "base_layout",
    "date_axis",
    "esc",
    "fmt",
    "plotly_js",
    "table",
]

Figure = dict[str, Any]

COMPONENT_COLORS = {
    "total": "#111827",
    "spread_capture": "#0d9488",
    "fees": "#ca8a04",
    "inventory": "#2563eb",
    "hedge_cost": "#ea580c",
    "basis": "#7c3aed",
    "funding": "#db2777",
}
COMPONENT_LABELS = {
    "total": "total",
    "spread_capture": "spread capture",
    "fees": "fees",
    "inventory": "inventory",
    "hedge_cost": "hedge cost",
    "basis": "basis",
    "funding": "funding",
}
SIDE_COLORS = {"buy": "#16a34a", "sell": "#dc2626"}
PALETTE = (  # markets and sweep combinations; apart from the component colors first
    "#0284c7",
    "#65a30d",
    "#be123c",
    "#92400e",
    "#475569",
    "#7c3aed",
    "#ea580c",
    "#db2777",
    "#0d9488",
    "#ca8a04",
)
_FONT_FAMILY = (
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'Liberation Sans', "
    "sans-serif"
)
_GRID = "#e5e7eb"
_AXIS_LINE = "#9ca3af"


def fmt(value: float | None, digits: int, *, signed: bool = False) -> str:
    """A number with thousands separators and fixed decimals; n/a for None or NaN."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"


def axis(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "standoff": 8},
        "gridcolor": _GRID,
        "linecolor": _AXIS_LINE,
        "zerolinecolor": "#cbd5e1",
        "ticks": "outside",
        "tickcolor": _AXIS_LINE,
        "automargin": True,
        **extra,
    }


def date_axis(**extra: Any) -> dict[str, Any]:
    """A time axis: x values are Unix milliseconds, shown in UTC."""
    return axis("time (UTC)", type="date", hoverformat="%H:%M:%S", **extra)


def base_layout(height: int, **extra: Any) -> dict[str, Any]:
    return {
        "height": height,
        "font": {"family": _FONT_FAMILY, "size": 12, "color": "#1f2937"},
        "margin": {"l": 72, "r": 24, "t": 36, "b": 48},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
        "hoverlabel": {"font": {"family": _FONT_FAMILY, "size": 12}},
        "hovermode": "x unified",
        **extra,
    }


def _json_for_script(value: object) -> str:
    """JSON safe inside a <script> element: no `</script>` or `<!--` can end it early."""
    text = orjson.dumps(value).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _share_columns(figure: Figure) -> Figure:
    """Store once the x arrays that several traces (or windowed sets) repeat; the page's script
    restores them. A chart's lines usually share their timestamps."""
    groups = [list(figure.get("data", [])), list(figure.get("windowed", []))]
    keys = [
        [
            tuple(item["x"]) if isinstance(item.get("x"), list) and len(item["x"]) >= 64 else None
            for item in group
        ]
        for group in groups
    ]
    every_key = [k for group_keys in keys for k in group_keys if k is not None]
    repeated = {k for k in every_key if every_key.count(k) > 1}
    if not repeated:
        return figure
    columns: dict[str, list[Any]] = {}
    names: dict[tuple[Any, ...], str] = {}
    shared_groups: list[list[dict[str, Any]]] = []
    for group, group_keys in zip(groups, keys, strict=True):
        shared: list[dict[str, Any]] = []
        for item, key in zip(group, group_keys, strict=True):
            if key is not None and key in repeated:
                name = names.setdefault(key, f"c{len(names)}")
                columns.setdefault(name, list(key))
                shared.append({**item, "x": "@" + name})
            else:
                shared.append(item)
        shared_groups.append(shared)
    result = {**figure, "data": shared_groups[0], "columns": columns}
    if "windowed" in figure:
        result["windowed"] = shared_groups[1]
    return result


@functools.cache
def plotly_js() -> str:
    """The plotly.js bundle of the installed plotly package (read once)."""
    from plotly.offline import get_plotlyjs  # noqa: PLC0415  84 ms import, only when rendering

    return str(get_plotlyjs())


class Page:
    """Accumulates the body of a page and its charts; `html()` returns the finished file."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = []
        self._charts = 0

    def add(self, fragment: str) -> None:
        """Raw HTML; escape any text in it with `esc`."""
        self._parts.append(fragment)

    def chart(
        self,
        name: str,
        figure: Figure,
        *,
        title: str,
        caption: str = "",
        autoscale_y: bool = False,
    ) -> None:
        """A chart with its heading and a line saying how to read it."""
        self._charts += 1
        figure_id = f"figure-{self._charts}"
        attrs = ' data-autoscale-y="1"' if autoscale_y else ""
        caption_html = f'<p class="caption">{esc(caption)}</p>' if caption else ""
        self._parts.append(
            f'<figure class="panel" data-chart-panel="{esc(name)}">'
            f"<h3>{esc(title)}</h3>{caption_html}"
            f'<div class="chart" data-chart="{esc(name)}" data-figure="{figure_id}"{attrs}></div>'
            f'<script type="application/json" id="{figure_id}">'
            f"{_json_for_script(_share_columns(figure))}</script>"
            "</figure>"
        )

    @property
    def chart_count(self) -> int:
        return self._charts

    def html(self) -> str:
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{_CSS}</style>"
            f"<script>{plotly_js()}</script></head>"
            f"<body><main>{''.join(self._parts)}</main><script>{_JS}</script></body></html>\n"
        )


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def table(
    headers: Iterable[str],
    rows: Iterable[Iterable[tuple[str, Mapping[str, str]]]],
    *,
    css_class: str = "figures",
    total: Iterable[tuple[str, Mapping[str, str]]] | None = None,
) -> str:
    """An HTML table; each cell is (text, attributes) and its text is escaped. `total` is a
    last row set apart."""

    def row_html(row: Iterable[tuple[str, Mapping[str, str]]], css: str = "") -> str:
        cells = []
        for text, attrs in row:
            attr_text = "".join(f' {k}="{esc(v)}"' for k, v in attrs.items())
            cells.append(f"<td{attr_text}>{esc(text)}</td>")
        row_class = f' class="{css}"' if css else ""
        return f"<tr{row_class}>{''.join(cells)}</tr>"

    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(row_html(row) for row in rows)
    if total is not None:
        body += row_html(total, "total")
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --panel: #ffffff; --bg: #f3f4f6;
  --accent: #2563eb; --pos: #15803d; --neg: #b91c1c; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial,
  'Liberation Sans', sans-serif; }
main { max-width: 1400px; margin: 0 auto; padding: 20px 24px 48px; }
header.run { background: #111827; color: #f9fafb; border-radius: 10px; padding: 18px 22px;
  margin-bottom: 16px; }
header.run h1 { margin: 0 0 6px; font-size: 22px; font-weight: 650; letter-spacing: .2px; }
header.run .meta { display: flex; flex-wrap: wrap; gap: 6px 22px; color: #d1d5db; }
header.run .meta b { color: #f9fafb; font-weight: 600; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
  font-weight: 600; background: #2563eb; color: #fff; vertical-align: 2px; margin-left: 8px; }
nav.markets { margin: 10px 0 0; display: flex; gap: 8px; flex-wrap: wrap; }
nav.markets a { color: #bfdbfe; text-decoration: none; border: 1px solid #374151;
  border-radius: 6px; padding: 2px 10px; }
nav.markets a:hover { background: #1f2937; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px;
  margin: 0 0 16px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .5px; }
.card .value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums;
  margin-top: 2px; white-space: nowrap; }
.card .unit { color: var(--muted); font-size: 13px; font-weight: 500; margin-left: 4px; }
.pos { color: var(--pos); } .neg { color: var(--neg); }
section.block { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 20px 8px; margin: 0 0 18px; }
section.block > h2 { margin: 0 0 4px; font-size: 19px; }
section.block > .sub { color: var(--muted); margin: 0 0 12px; }
.summary-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr));
  gap: 10px 22px; margin: 6px 0 14px; }
.summary-grid h4 { margin: 4px 0 4px; font-size: 12px; color: var(--muted);
  text-transform: uppercase; letter-spacing: .5px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th:first-child, td:first-child, th.param, td.param { text-align: left; }
th { font-weight: 600; color: #374151; background: #f9fafb; }
table.kv td:first-child { color: #374151; }
table.kv th { display: none; }
tr.total td { font-weight: 650; border-top: 2px solid #d1d5db; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:hover { background: #eef2ff; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
.table-scroll { overflow-x: auto; margin: 0 0 14px; }
figure.panel { margin: 0 0 18px; padding-top: 6px; border-top: 1px solid var(--line); }
figure.panel h3 { margin: 6px 0 0; font-size: 15px; }
figure.panel .caption { margin: 2px 0 0; color: var(--muted); font-size: 13px; }
details.config { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: 10px 16px; margin: 0 0 18px; }
details.config summary { cursor: pointer; font-weight: 600; }
details.config pre { margin: 10px 0 4px; padding: 12px; background: #f9fafb;
  border: 1px solid var(--line); border-radius: 6px; overflow: auto; max-height: 480px;
  font: 12.5px/1.45 ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace; }
.note { color: var(--muted); font-size: 13px; }
"""

# Draws every chart from its JSON block. On charts marked data-autoscale-y, zooming the time axis
# rescales the y axes to the points in view (Plotly keeps the full range otherwise, which flattens
# a price zoomed to a few minutes). A figure's `windowed` sets carry a trace's every point while
# the trace draws a thinned copy (thousands of SVG markers, or lines longer than the chart is
# wide, make a chart slow); each zoom re-thins the window in view: lines keep each bucket's
# extremes, markers are picked evenly. Tables marked `sortable` sort on a header click.
_JS = """
(function () {
  'use strict';
  const plotConfig = { displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ['lasso2d', 'select2d', 'autoScale2d'] };

  function toMillis(value) {
    if (typeof value === 'number') return value;
    let text = String(value).trim().replace(' ', 'T');
    if (!text.includes('T')) text += 'T00:00';
    return Date.parse(text + 'Z');
  }

  function xRange(div) {
    return div._fullLayout.xaxis.range.map(toMillis);
  }

  function firstAtOrAfter(xs, value) {
    let lo = 0, hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] < value) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  // The lowest and highest point of each bucket, as the report's Python side thins.
  function thinLine(xs, ys, lo, hi, maxPoints) {
    const n = hi - lo;
    if (n <= maxPoints) return [xs.slice(lo, hi), ys.slice(lo, hi)];
    const buckets = Math.max(1, maxPoints >> 1);
    const outX = [], outY = [];
    for (let b = 0; b < buckets; b++) {
      const start = lo + Math.floor(b * n / buckets), end = lo + Math.floor((b + 1) * n / buckets);
      let iMin = -1, iMax = -1;
      for (let i = start; i < end; i++) {
        const y = ys[i];
        if (y === null) continue;
        if (iMin < 0 || y < ys[iMin]) iMin = i;
        if (iMax < 0 || y > ys[iMax]) iMax = i;
      }
      if (iMin < 0) { outX.push(xs[start]); outY.push(null); continue; }
      for (const i of iMin === iMax ? [iMin] : [Math.min(iMin, iMax), Math.max(iMin, iMax)]) {
        outX.push(xs[i]);
        outY.push(ys[i]);
      }
    }
    return [outX, outY];
  }

  // Plotly.update of x forgets the axis type (and would read Unix ms as plain numbers) unless
  // the same call names it; the range is passed so that it is kept as well.
  function keepXAxis(div) {
    return { 'xaxis.type': 'date', 'xaxis.range': div._fullLayout.xaxis.range.slice() };
  }

  function windowSets(div, sets) {
    const range = xRange(div);
    const lines = sets.filter(s => s.kind === 'line');
    const markers = sets.filter(s => s.kind === 'markers');
    let done = Promise.resolve();
    if (lines.length) {
      const update = { x: [], y: [] };
      for (const set of lines) {  // one point beyond each edge: lines run to the frame
        const lo = Math.max(0, firstAtOrAfter(set.x, range[0]) - 1);
        const hi = Math.min(set.x.length, firstAtOrAfter(set.x, range[1] + 1) + 1);
        const [xs, ys] = thinLine(set.x, set.y, lo, hi, set.max);
        update.x.push(xs);
        update.y.push(ys);
      }
      done = done.then(() => Plotly.update(div, update, keepXAxis(div), lines.map(s => s.trace)));
    }
    if (markers.length) {
      const update = { x: [], y: [], customdata: [], text: [], 'marker.symbol': [] };
      for (const set of markers) {  // evenly thinned, as the Python side does
        const lo = firstAtOrAfter(set.x, range[0]);
        const hi = firstAtOrAfter(set.x, range[1] + 1);
        const step = Math.max(1, Math.ceil((hi - lo) / set.max));
        const pick = function (column) {
          const out = [];
          for (let i = lo; i < hi; i += step) out.push(column[i]);
          return out;
        };
        update.x.push(pick(set.x));
        update.y.push(pick(set.y));
        update.customdata.push(pick(set.customdata));
        update.text.push(pick(set.text));
        update['marker.symbol'].push(pick(set.symbol));
      }
      done = done.then(() => Plotly.update(div, update, keepXAxis(div), markers.map(s => s.trace)));
    }
    return done;
  }

  function rescaleY(div) {
    const range = xRange(div);
    const extents = {};
    for (const trace of div.data) {
      if (trace.visible === 'legendonly' || !trace.x || !trace.y) continue;
      const axisName = 'yaxis' + (trace.yaxis && trace.yaxis !== 'y' ? trace.yaxis.slice(1) : '');
      const extent = extents[axisName] || (extents[axisName] = [Infinity, -Infinity]);
      for (let i = 0; i < trace.x.length; i++) {
        const x = trace.x[i], y = trace.y[i];
        if (y === null || x < range[0] || x > range[1]) continue;
        if (y < extent[0]) extent[0] = y;
        if (y > extent[1]) extent[1] = y;
      }
    }
    const update = {};
    for (const [name, [lo, hi]] of Object.entries(extents)) {
      if (!isFinite(lo)) continue;
      const pad = (hi - lo) * 0.06 || Math.abs(hi) * 1e-4 || 1;
      update[name + '.range'] = [lo - pad, hi + pad];
    }
    return Object.keys(update).length ? Plotly.relayout(div, update) : Promise.resolve();
  }

  function followZoom(div, sets, autoscaleY) {
    div.on('plotly_relayout', function (event) {
      const keys = Object.keys(event);
      const reset = keys.some(k => k.startsWith('xaxis.autorange'));
      if (!reset && !keys.some(k => k.startsWith('xaxis.range'))) return;
      windowSets(div, sets).then(function () {
        if (!autoscaleY) return;
        if (!reset) return rescaleY(div);
        const update = {};
        for (const name of Object.keys(div._fullLayout)) {
          if (/^yaxis\\d*$/.test(name)) update[name + '.autorange'] = true;
        }
        return Plotly.relayout(div, update);
      });
    });
  }

  function draw(div) {
    const figure = JSON.parse(document.getElementById(div.dataset.figure).textContent);
    const columns = figure.columns || {};
    for (const item of figure.data.concat(figure.windowed || [])) {
      if (typeof item.x === 'string' && item.x[0] === '@') item.x = columns[item.x.slice(1)];
    }
    return Plotly.newPlot(div, figure.data, figure.layout, plotConfig).then(function () {
      const sets = figure.windowed || [];
      if (div.dataset.autoscaleY || sets.length) followZoom(div, sets, !!div.dataset.autoscaleY);
    });
  }

  // One chart at a time, yielding in between, so the page shows and scrolls while they draw.
  const charts = Array.from(document.querySelectorAll('div.chart[data-figure]'));
  let next = 0;
  function drawNext() {
    if (next >= charts.length) {
      document.body.dataset.chartsDrawn = String(charts.length);
      return;
    }
    const div = charts[next++];
    draw(div)
      .catch(function (error) { console.error('chart ' + div.dataset.chart + ': ' + error); })
      .then(function () { setTimeout(drawNext, 0); });
  }
  setTimeout(drawNext, 0);

  function sortKey(cell) {
    const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
    const number = Number(raw);
    return raw !== '' && !Number.isNaN(number) ? number : raw;
  }

  for (const tableEl of document.querySelectorAll('table.sortable')) {
    const headers = Array.from(tableEl.tHead.rows[0].cells);
    headers.forEach(function (th, column) {
      th.addEventListener('click', function () {
        const ascending = th.getAttribute('aria-sort') !== 'ascending';
        headers.forEach(h => h.removeAttribute('aria-sort'));
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        const body = tableEl.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          const ka = sortKey(a.cells[column]), kb = sortKey(b.cells[column]);
          const missingA = ka === '' || ka === 'n/a', missingB = kb === '' || kb === 'n/a';
          if (missingA || missingB) return missingA - missingB;  // missing values last
          let order;
          if (typeof ka === 'number' && typeof kb === 'number') order = ka - kb;
          else order = String(ka).localeCompare(String(kb), undefined, { numeric: true });
          return ascending ? order : -order;
        });
        rows.forEach(r => body.appendChild(r));
      });
    });
  }
})();
"""
