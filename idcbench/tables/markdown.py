"""Tables -> GitHub Markdown: one table, `compare`'s output, the leaderboard's README.md.

>>> from idcbench.tables.model import Cell, Row, Table
>>> t = Table("demo (test)", "demo", "test", "total", ["CIDEr-D"], [Row("m", "measured", {"CIDEr-D": Cell(12.5)})])
>>> print(table_markdown(t).splitlines()[2])
| m | measured | – | – | 12.5 |
"""

from __future__ import annotations

from typing import Mapping, Sequence
from urllib.parse import quote

from idcbench.tables.model import (GENERATED, Table, anchor, column_heads, format_cell, format_cost, format_p,
                                   kind_tag, row_label, section_title, seeds_text, source_numbers)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def table_markdown(table: Table, *, sources: Mapping[str, int] | None = None) -> str:
    """A GitHub Markdown table (no title)."""
    types = table.per_subset
    heads = column_heads(table)
    show_p = table.baseline is not None
    lines = ["| " + " | ".join(_md_escape(h) for h in heads) + " |", "|" + "---|" * len(heads)]
    for r in table.rows:
        label = _md_escape(row_label(r))
        if r.report:
            label = "[" + label.replace("[", "\\[").replace("]", "\\]") + f"]({quote(r.report)})"
        cells = [label, kind_tag(r, sources), seeds_text(r) or "–"]
        if not types:
            cells.append("–" if r.n is None else str(r.n))
        cells += [format_cell(r.cells.get(c)) for c in table.columns]
        cells += [format_cost(r.cost.get(c), c) for c in table.cost_columns]
        if show_p:
            cells.append("baseline" if r.label == table.baseline else format_p(r.p_value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_markdown(tables: Sequence[Table]) -> str:
    parts = []
    for t in tables:
        parts.append(f"### {t.title}\n\n{table_markdown(t)}")
        parts += [f"\n{n}\n" for n in t.notes] + [f"\n**Warning:** {w}\n" for w in t.warnings]
    return "\n".join(parts)


def leaderboard_markdown(tables: Mapping[tuple[str, str], Sequence[Table]]) -> str:
    """leaderboard/README.md: one section per dataset split, its tables and the published rows' sources."""
    out = ["# idcbench leaderboard", "", GENERATED, "",
           "Sortable tables and charts: [index.html](index.html); every number as CSV: `<dataset>.csv`.", ""]
    if not tables:
        out += ["No runs yet: `idcbench run MODEL --dataset NAME`, then `idcbench leaderboard`.", ""]
    else:
        out.append("Datasets: " + ", ".join(f"[{section_title(d, s)}](#{anchor(d, s)})" for d, s in tables))
        out.append("")
    for (dataset, split), ts in tables.items():
        from idcbench.published import dataset_protocol

        out += [f"## {section_title(dataset, split)}", ""]
        sources = source_numbers(ts)
        for t in ts:
            out += [f"### {t.heading}", "", table_markdown(t, sources=sources).rstrip("\n"), ""]
            out += [f"_{n}_" for n in t.notes] + [f"**Warning:** {w}" for w in t.warnings] + [""]
        if sources:
            protocol = dataset_protocol(dataset)
            out.append("Published numbers" + (f" ({protocol})" if protocol else "") + ", sources:")
            out.append("")
            out += [f"{i}. {s}" for s, i in sources.items()]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
