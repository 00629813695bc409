"""Tables on the console that never cut a number: rich tables folded into several tables when the terminal is
narrow (the label columns repeat in each), plain Markdown when the output is not a terminal (a pipe, a file).

>>> g = Grid("scores", ["subset", "n", "CIDEr-D"], [["semantic", "3985", "112.3\\n[110.0, 114.5]"]])
>>> print(grid_markdown(g), end="")
### scores
<BLANKLINE>
| subset | n | CIDEr-D |
|---|---:|---:|
| semantic | 3985 | 112.3 [110.0, 114.5] |
>>> [len(part) for part in fold_columns([30, 12, 12, 12, 12, 12], keys=1, width=80)]
[4, 3]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

BORDER = 3  # one vertical line and one space of padding on each side of a column


@dataclass
class Grid:
    """A table as text: the first `keys` columns name a row (left-aligned, repeated when folded), the rest are
    values (right-aligned, never wrapped inside a line; a cell may hold several lines)."""

    title: str
    head: list[str]
    rows: list[list[str]]
    keys: int = 1
    notes: list[str] = field(default_factory=list)


def _width(text: str) -> int:
    return max((len(line) for line in text.split("\n")), default=0)


def _head_width(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)  # a header may wrap between words


def column_widths(grid: Grid) -> list[int]:
    """The narrowest width of each column that shows every cell line whole."""
    return [max([_head_width(h)] + [_width(r[c]) for r in grid.rows]) for c, h in enumerate(grid.head)]


def fold_columns(widths: Sequence[int], *, keys: int, width: int) -> list[list[int]]:
    """Column indices of each folded table: the key columns and as many value columns as fit in `width`."""
    fixed = sum(w + BORDER for w in widths[:keys]) + 1
    parts: list[list[int]] = []
    used = fixed
    for c in range(keys, len(widths)):
        need = widths[c] + BORDER
        if parts and used + need <= width:
            parts[-1].append(c)
            used += need
        else:
            parts.append([*range(keys), c])
            used = fixed + need
    return parts or [list(range(len(widths)))]


def grid_markdown(grid: Grid) -> str:
    """GitHub Markdown: a ``###`` title, the table (cell lines joined by spaces), the notes."""
    def cell(s: str) -> str:
        return " ".join(s.split("\n")).replace("|", "\\|")

    align = ["---"] * grid.keys + ["---:"] * (len(grid.head) - grid.keys)
    lines = [f"### {grid.title}", "", "| " + " | ".join(cell(h) for h in grid.head) + " |",
             "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in grid.rows]
    lines += [f"\n{n}" for n in grid.notes]
    return "\n".join(lines) + "\n"


def rich_tables(grid: Grid, width: int) -> list[Table]:
    """The grid as rich tables that fit in `width` columns; a number is never cut (labels may wrap)."""
    widths = column_widths(grid)
    folding = list(widths)
    folding[0] = min(widths[0], max(10, width // 3))  # a long label wraps rather than pushing numbers out
    parts = fold_columns(folding, keys=grid.keys, width=width)
    tables = []
    for k, cols in enumerate(parts):
        values = sum(widths[c] + BORDER for c in cols[grid.keys:])
        room = width - values - 1 - sum(widths[c] + BORDER for c in range(1, grid.keys)) - BORDER  # for labels
        title = grid.title + (f" ({k + 1}/{len(parts)})" if len(parts) > 1 else "")
        notes = " ".join(grid.notes) if k == len(parts) - 1 else ""
        table = Table(title=escape(title), caption=escape(notes) or None, caption_justify="left")
        for c in cols:
            if c == 0:
                table.add_column(escape(grid.head[c]), width=max(folding[0], min(widths[0], room)), overflow="fold",
                                 style="bold")
            else:  # every cell line fits its width exactly: nothing wraps but a header between words
                table.add_column(escape(grid.head[c]), width=widths[c], justify="left" if c < grid.keys else "right",
                                 overflow="fold")
        for r in grid.rows:
            table.add_row(*(escape(r[c]) for c in cols))
        tables.append(table)
    return tables


def print_grid(console: Console, grid: Grid, fmt: str | None = None) -> None:
    """`fmt` "table" (rich) or "md"; by default rich on a terminal, Markdown otherwise."""
    if fmt is None:
        fmt = "table" if console.is_terminal else "md"
    if fmt == "md":
        console.print(grid_markdown(grid), markup=False, highlight=False, soft_wrap=True, end="")
        return
    for table in rich_tables(grid, console.width):
        console.print(table)


def metrics_grid(metrics: Mapping[str, Any], title: str) -> Grid:
    """The scores of a ``metrics.json`` (values x100): a row per subset with its n, a column per metric, ``-`` for
    a metric not computed, a mark and its footnote for a subset too small for a metric (CIDEr-D on one example), and
    in the title how many ids were scored when predictions covered only part of them (``--allow-partial``).
    `idcbench eval` and `idcbench run` print the same table.

    >>> g = metrics_grid({"subsets": {"total": {"n": 2, "metrics": {"CIDEr-D": 112.3456, "SPICE": None}},
    ...                               "type=add": {"n": 1, "metrics": {"CIDEr-D": 0.0, "SPICE": None}}}}, "t")
    >>> g.head, g.rows
    (['subset', 'n', 'CIDEr-D', 'SPICE'], [['total', '2', '112.35', '-'], ['type=add', '1', 'n/a†', '-']])
    >>> g.notes[0].split(";")[0]
    '† n/a: the subset is too small to score CIDEr-D on, so no number is shown'
    >>> metrics_grid({"subsets": {}, "coverage": {"references": 60, "predicted": 20, "missing": 40}}, "t").title
    't: partial, 20 of 60 ids scored'
    """
    from idcbench.tables.model import MARKS, TOO_SMALL, too_small_note
    from idcbench.metrics import too_small

    subsets = metrics.get("subsets", {})
    names: list[str] = []
    for s in subsets.values():
        names += [m for m in s.get("metrics", {}) if m not in names]
    rows, flagged = [], []
    for name, s in subsets.items():
        vals, cells = s.get("metrics", {}), []
        for m in names:
            if not isinstance(vals.get(m), (int, float)):
                cells.append("-")
            elif too_small(m, s.get("n")) is not None:
                cells.append(MARKS[TOO_SMALL])
                flagged += [m] if m not in flagged else []
            else:
                cells.append(f"{vals[m]:.2f}")
        rows.append([name, str(s.get("n", "")), *cells])
    coverage = metrics.get("coverage") or {}
    if coverage.get("missing"):
        title += f": partial, {coverage.get('predicted')} of {coverage.get('references')} ids scored"
    return Grid(title, ["subset", "n", *names], rows, keys=2, notes=[too_small_note(m) for m in flagged])


def retrieval_line(retrieval: Mapping[str, Any]) -> str:
    """The retrieval scores of a ``metrics.json`` on one line; counts (``n_*``) as integers.

    >>> retrieval_line({"t2p_R@1": 0.333, "t2p_MedR": 72, "n_captions": 1800.0, "subset": "semantic"})
    't2p_R@1 0.33  t2p_MedR 72  n_captions 1800  subset semantic'
    """
    def value(key: str, v: Any) -> str:
        if isinstance(v, float):
            return str(round(v)) if key.startswith("n_") else f"{v:.2f}"
        return str(v)

    return "  ".join(f"{k} {value(k, v)}" for k, v in retrieval.items() if isinstance(v, (int, float, str)))


def table_grid(t: Any) -> Grid:
    """A `idcbench.tables.model.Table` (`compare`, the demo's leaderboard) for the console: value (± std) over its
    interval in each cell, the p-value column when the table has a baseline."""
    from idcbench.tables.model import (COST_COLUMNS, column_title, format_cell, format_cost, format_p, row_label,
                                       seeds_text)

    head = ["model", "seeds", "n"] + [column_title(c) for c in t.columns] + [COST_COLUMNS[c] for c in t.cost_columns]
    head += [f"p vs {t.baseline}"] if t.baseline else []
    rows = []
    for r in t.rows:
        cells = [row_label(r), seeds_text(r) or "–", "–" if r.n is None else str(r.n)]
        cells += [format_cell(r.cells.get(c)).replace(" [", "\n[") for c in t.columns]
        cells += [format_cost(r.cost.get(c), c) for c in t.cost_columns]
        if t.baseline:
            cells.append("baseline" if r.label == t.baseline else format_p(r.p_value))
        rows.append(cells)
    return Grid(t.title, head, rows, keys=3, notes=list(t.notes))
