"""Tables -> self-contained HTML (inline CSS, sortable tables, SVG bar charts); `page` and `esc` for other pages.

Output is deterministic: fixed number formats, input order preserved, no timestamps, no network resources.

>>> esc('a<b & "c"')
'a&lt;b &amp; &quot;c&quot;'
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from idcbench.tables.model import (GENERATED, Cell, Table, anchor, column_heads, format_cell, format_cost,
                                   format_number, format_p, kind_tag, row_label, seeds_text, source_numbers)


CSS = """
:root { --fg:#1d2330; --muted:#5c6475; --line:#d9dde5; --head:#f2f4f8; --accent:#2f6fdf; --pub:#fbf6e9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; padding: 24px 32px; max-width: 1400px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 6px; } p.note, .muted { color: var(--muted); font-size: 12.5px; margin: 4px 0; }
table { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; vertical-align: top; }
th { background: var(--head); position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; } table.sortable th:hover { color: var(--accent); }
th.asc::after { content: " ▲"; font-size: 10px; } th.desc::after { content: " ▼"; font-size: 10px; }
td.label, th.label { text-align: left; } td .ci { display: block; color: var(--muted); font-size: 11.5px; }
tr.published td { background: var(--pub); } tr.published td.label { font-style: italic; }
span.tag { display: inline-block; font-size: 11px; padding: 0 5px; border-radius: 3px; background: #e8ecf4; color: var(--muted); }
tr.published span.tag { background: #f3e3b5; color: #6b5300; }
.chart { margin: 8px 0 16px; } .chart text { font-size: 11px; fill: var(--fg); }
nav a { margin-right: 12px; } code { background: #f1f3f7; padding: 0 3px; border-radius: 3px; }
ol.sources { font-size: 12.5px; color: var(--muted); } p.warning { color: #8a4b00; }
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('thead th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.classList.contains('desc') ? 1 : -1;
      table.querySelectorAll('thead th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(dir === 1 ? 'asc' : 'desc');
      function key(r) { var c = r.cells[col], v = c.getAttribute('data-v');
        if (v !== null && v !== '') return parseFloat(v); return c.textContent.trim().toLowerCase(); }
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        var xn = typeof x === 'number', yn = typeof y === 'number';
        if (xn && !yn) return -1; if (yn && !xn) return 1;
        return (x < y ? -1 : x > y ? 1 : 0) * dir; });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


# <meta name="idcbench-run" content="SPEC_HASH"> in a run's report page: how the leaderboard finds the reports beside it
RUN_META = "idcbench-run"


def page(title: str, body: str, *, extra_css: str = "", script: str = "", meta: Mapping[str, str] | None = None) -> str:
    """A complete, self-contained HTML document (inline CSS and JS only); `meta`: extra ``<meta name content>``."""
    metas = "".join(f'<meta name="{esc(k)}" content="{esc(v)}">\n' for k, v in (meta or {}).items())
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" + metas +
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}{extra_css}</style>\n</head>\n<body>\n{body}\n"
            f"<script>{SORT_JS}{script}</script>\n</body>\n</html>\n")


def _td_cell(cell: Cell | None) -> str:
    if cell is not None and cell.flag:
        return f'<td data-v="" class="flag">{esc(format_cell(cell))}</td>'
    if cell is None or cell.value is None:
        return '<td data-v="">–</td>'
    main = format_cell(cell, ci=False)
    ci = ""
    if cell.low is not None and cell.high is not None:
        ci = f' <span class="ci">[{format_number(cell.low)}, {format_number(cell.high)}]</span>'
    return f'<td data-v="{cell.value:.6f}">{esc(main)}{ci}</td>'


def _td_cost(value: float | str | None, column: str) -> str:
    """A cost cell; numbers sort by value."""
    sort = f"{value:.6f}" if isinstance(value, (int, float)) else ""
    return f'<td data-v="{sort}">{esc(format_cost(value, column))}</td>'


def table_html(table: Table, *, sources: Mapping[str, int] | None = None, table_id: str = "") -> str:
    """A sortable HTML table; published rows are tinted and tagged."""
    types = table.per_subset
    ths = "".join(f'<th class="label">{esc(h)}</th>' if i < 2 else f"<th>{esc(h)}</th>"
                  for i, h in enumerate(column_heads(table)))
    body = []
    for r in table.rows:
        tag = kind_tag(r, sources)
        title = f' title="{esc(r.source)}"' if r.source else ""
        label = esc(row_label(r))
        if r.report:
            label = f'<a href="{esc(quote(r.report))}" title="report of this run">{label}</a>'
        tds = [f'<td class="label"{title}>{label}</td>', f'<td class="label"><span class="tag">{esc(tag)}</span></td>',
               f"<td>{esc(seeds_text(r) or '–')}</td>"]
        if not types:
            tds.append(f'<td data-v="{"" if r.n is None else r.n}">{"–" if r.n is None else r.n}</td>')
        tds += [_td_cell(r.cells.get(c)) for c in table.columns]
        tds += [_td_cost(r.cost.get(c), c) for c in table.cost_columns]
        if table.baseline is not None:
            if r.label == table.baseline:
                tds.append('<td data-v="">baseline</td>')
            else:
                tds.append(f'<td data-v="{"" if r.p_value is None else f"{r.p_value:.6f}"}">{esc(format_p(r.p_value))}</td>')
        body.append(f'<tr class="{esc(r.kind)}">' + "".join(tds) + "</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return (f'<table class="sortable"{ident} data-table="{esc(table.key)}"><thead><tr>{ths}</tr></thead>'
            f"<tbody>\n" + "\n".join(body) + "\n</tbody></table>")


PALETTE = ("#2f6fdf", "#e07b39", "#3a9d5d", "#c43c5a", "#7d5bbf", "#8c7a3b", "#2aa3a8", "#d45fb4", "#6b7280", "#98b83b")


def bar_chart_svg(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *,
                  title: str = "", y_label: str = "") -> str:
    """A grouped vertical bar chart as inline SVG: one group per category, one bar per series (with legend)."""
    if not categories or not series:
        return ""
    values = [v for _, vs in series for v in vs if v is not None]
    vmax = max(values + [1e-9])
    top = _nice_ceiling(vmax)
    w_bar = max(6, min(28, int(560 / max(1, len(categories) * len(series)))))
    gap = 18
    group_w = w_bar * len(series) + gap
    left, right, top_pad, bottom = 48, 16, 28, 44
    plot_h = 220
    width = max(left + group_w * len(categories) + right, 360)
    legend = legend_layout([name for name, _ in series], width - left - right)
    width = max(width, left + right + max(x + w for x, _, w in legend))
    height = top_pad + plot_h + bottom + 18 * (1 + max(row for _, row, _ in legend))
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">']
    if title:
        out.append(f'<text x="{left}" y="16" font-weight="600">{esc(title)}</text>')
    for i in range(5):
        v = top * i / 4
        y = top_pad + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ec"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    if y_label:
        out.append(f'<text x="12" y="{top_pad + plot_h / 2:.1f}" transform="rotate(-90 12 {top_pad + plot_h / 2:.1f})" '
                   f'text-anchor="middle">{esc(y_label)}</text>')
    for ci, cat in enumerate(categories):
        x0 = left + gap / 2 + ci * group_w
        for si, (name, vs) in enumerate(series):
            v = vs[ci]
            if v is None:
                continue
            h = plot_h * max(0.0, v) / top
            x = x0 + si * w_bar
            y = top_pad + plot_h - h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w_bar - 1}" height="{h:.1f}" '
                       f'fill="{PALETTE[si % len(PALETTE)]}"><title>{esc(name)} · {esc(cat)}: {v:.1f}</title></rect>')
        out.append(f'<text x="{x0 + (w_bar * len(series)) / 2:.1f}" y="{top_pad + plot_h + 16}" '
                   f'text-anchor="middle">{esc(cat)}</text>')
    out += _legend_svg([name for name, _ in series], legend, left, top_pad + plot_h + 34)
    out.append("</svg>")
    return "\n".join(out)


def line_chart_svg(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *, title: str = "",
                   x_label: str = "", y_label: str = "") -> str:
    """Lines with dots as inline SVG (training curves: val score against training steps), with legend; empty when
    there is no point."""
    points = [(x, y) for _, pts in series for x, y in pts if y is not None]
    if not points:
        return ""
    xmax, top = max(x for x, _ in points) or 1.0, _nice_ceiling(max(y for _, y in points))
    left, right, top_pad, bottom, plot_w, plot_h = 48, 16, 28, 44, 520, 200
    width = left + plot_w + right
    legend = legend_layout([name for name, _ in series], plot_w)
    width = max(width, left + right + max(x + w for x, _, w in legend))
    height = top_pad + plot_h + bottom + 18 * (1 + max(row for _, row, _ in legend))

    def xy(x: float, y: float) -> tuple[float, float]:
        return left + plot_w * x / xmax, top_pad + plot_h - plot_h * y / top

    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">']
    if title:
        out.append(f'<text x="{left}" y="16" font-weight="600">{esc(title)}</text>')
    for i in range(5):
        y = top_pad + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ec"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{top * i / 4:g}</text>')
    for i in range(5):
        x = left + plot_w * i / 4
        out.append(f'<text x="{x:.1f}" y="{top_pad + plot_h + 16}" text-anchor="middle">{xmax * i / 4:.0f}</text>')
    if x_label:
        out.append(f'<text x="{left + plot_w / 2:.1f}" y="{top_pad + plot_h + 30}" text-anchor="middle">'
                   f'{esc(x_label)}</text>')
    if y_label:
        out.append(f'<text x="12" y="{top_pad + plot_h / 2:.1f}" transform="rotate(-90 12 {top_pad + plot_h / 2:.1f})" '
                   f'text-anchor="middle">{esc(y_label)}</text>')
    for si, (name, pts) in enumerate(series):
        colour = PALETTE[si % len(PALETTE)]
        pts = [xy(x, y) for x, y in pts if y is not None]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in pts]
    out += _legend_svg([name for name, _ in series], legend, left, top_pad + plot_h + 48)
    out.append("</svg>")
    return "\n".join(out)


def curves_svg(curves: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]]) -> str:
    """Training curves of several models (`label -> stage -> rows`, `idcbench.train_log`), one chart per metric:
    each line is one model's stage, val score against its training steps."""
    by_metric: dict[str, list[tuple[str, list[tuple[float, float]]]]] = {}
    for label, stages in curves.items():
        for stage, rows in stages.items():
            if not rows:
                continue
            metric = str(rows[0].get("metric") or "val")
            name = label if len([s for s in stages.values() if s]) == 1 else f"{label} ({stage})"
            by_metric.setdefault(metric, []).append((name, [(float(r["step"]), r.get("val")) for r in rows]))
    return "\n".join(line_chart_svg(series, title=f"val {metric} during training", x_label="training steps",
                                     y_label=metric) for metric, series in by_metric.items())


def _legend_svg(names: Sequence[str], legend: Sequence[tuple[int, int, int]], left: int, top: float) -> list[str]:
    """A chart's legend: a colour box and the name of each series, at the places `legend_layout` gave."""
    out = []
    for si, (name, (x, row, _)) in enumerate(zip(names, legend)):
        lx, yy = left + x, top + row * 18
        out.append(f'<rect x="{lx}" y="{yy - 9}" width="10" height="10" fill="{PALETTE[si % len(PALETTE)]}"/>')
        out.append(f'<text x="{lx + 14}" y="{yy}">{esc(name)}</text>')
    return out


CHAR_PX = 7  # an upper bound of the mean advance of an 11 px sans-serif glyph: legend entries never overlap or clip
LEGEND_GAP = 24


def legend_layout(names: Sequence[str], width: int) -> list[tuple[int, int, int]]:
    """(x, row, entry width) of each legend entry, in order, wrapped into rows of `width` px; an entry wider than
    `width` gets a row of its own (the chart then widens to hold it). Names are never shortened.

    >>> legend_layout(["a" * 10, "b" * 10, "c" * 40], 300)
    [(0, 0, 84), (108, 0, 84), (0, 1, 294)]
    """
    out: list[tuple[int, int, int]] = []
    x = row = 0
    for name in names:
        w = 14 + CHAR_PX * len(name)  # the colour box, then the text
        if x and x + w > width:
            x, row = 0, row + 1
        out.append((x, row, w))
        x += w + LEGEND_GAP
    return out


def _nice_ceiling(v: float) -> float:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500):
        if v <= step * 4:
            return step * 4
    return float(int(v) + 1)


def subset_chart(table: Table) -> str:
    """Bar chart of a per-subset table's measured rows (e.g. CIDEr-D per change type)."""
    rows = table.measured
    return bar_chart_svg(table.columns, [(r.label, [r.cells[c].value if c in r.cells else None for c in table.columns])
                                         for r in rows], title=f"{table.heading} (measured)", y_label=table.metric)


def main_chart(table: Table, metric: str = "CIDEr-D") -> str:
    rows = [r for r in table.measured if r.cells.get(metric) and r.cells[metric].value is not None]
    if not rows:
        return ""
    return bar_chart_svg([metric], [(r.label, [r.cells[metric].value]) for r in rows],
                         title=f"{metric} (measured)", y_label=metric)


def leaderboard_html(tables: Mapping[tuple[str, str], Sequence[Table]]) -> str:
    """leaderboard/index.html: every dataset's tables (sortable) and a CIDEr-D per change type chart."""
    from idcbench.published import dataset_protocol

    body = ['<h1>idcbench leaderboard</h1>', f'<p class="muted">{esc(GENERATED.replace("`", ""))}</p>']
    if not tables:
        body.append("<p>No runs yet.</p>")
    else:
        body.append("<nav>" + " ".join(f'<a href="#{anchor(d, s)}">{esc(d)} ({esc(s)})</a>' for d, s in tables) + "</nav>")
    for (dataset, split), ts in tables.items():
        body.append(f'<section id="{anchor(dataset, split)}" data-dataset="{esc(dataset)}">')
        body.append(f"<h2>{esc(dataset)} ({esc(split)})</h2>")
        sources = source_numbers(ts)
        charted = False
        for t in ts:
            body.append(f"<h3>{esc(t.heading)}</h3>")
            body.append(table_html(t, sources=sources, table_id=f"{anchor(dataset, split)}-{t.key}"))
            body += [f'<p class="note">{esc(n)}</p>' for n in t.notes]
            body += [f'<p class="note warning">Warning: {esc(w)}</p>' for w in t.warnings]
            if t.per_subset and t.measured and not charted:
                body.append(subset_chart(t))
                charted = True
        if not charted and ts and ts[0].measured:
            body.append(main_chart(ts[0]))
        if ts and ts[0].curves:
            body.append("<h3>Training curves</h3>" + curves_svg(ts[0].curves)
                        + '<p class="note">Validation score after each epoch against training steps, for the models '
                          'that select on val (the checkpoint kept is the best one).</p>')
        if sources:
            protocol = dataset_protocol(dataset)
            body.append(f'<p class="note">Published numbers{esc(f" ({protocol})" if protocol else "")}, sources:</p>')
            body.append('<ol class="sources">' + "".join(f"<li>{esc(s)}</li>" for s in sources) + "</ol>")
        body.append("</section>")
    return page("idcbench leaderboard", "\n".join(body))
