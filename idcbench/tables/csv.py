"""Tables -> CSV in long format (one line per row and metric), values x100 with 4 decimals.

``settings`` holds what tells a row from the other rows of its model (a JSON object, empty when nothing does: see
`idcbench.tables.model.config_labels`); ``flag`` says why a value is empty although the run has one (``too_small``:
the subset has too few examples for the metric). With ``--cost`` each measured row also has one line per cost entry
(``metric`` = the ``cost.json`` key: ``train_seconds``, ``train_steps``, ``caption_seconds``, ``score_seconds``,
``device``; ``value`` as recorded, mean over seeds, not x100).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Sequence

from idcbench.tables.model import Cell, Table, seeds_text


CSV_FIELDS = ("dataset", "split", "table", "type", "label", "model", "settings", "seeds", "n", "subset", "metric",
              "value", "flag", "std", "ci_low", "ci_high", "p_value", "baseline", "source")


def _num(v: float | None, digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def tables_csv(tables: Sequence[Table]) -> str:
    """Long format: one line per (row, metric) cell, values x100 with 4 decimals."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for t in tables:
        for r in t.rows:
            # the fields every line of this row shares: before and after the cell's own
            head = [t.dataset, t.split, t.key, r.kind, r.label, r.model,
                    json.dumps(r.settings, ensure_ascii=False) if r.settings else "", seeds_text(r),
                    "" if r.n is None else r.n]
            tail = [t.baseline or "", r.source]
            for c in t.columns:
                cell = r.cells.get(c) or Cell(None)
                subset, metric = (c, t.metric) if t.per_subset else (r.subset or t.subset, c)
                p = r.p_value if metric == "CIDEr-D" else None
                w.writerow([*head, subset, metric, _num(cell.value), cell.flag, _num(cell.std), _num(cell.low),
                            _num(cell.high), "" if p is None else f"{p:.4f}", *tail])
            for c in t.cost_columns if r.kind == "measured" else ():
                v = r.cost.get(c)
                w.writerow([*head, r.subset or t.subset, c, v if isinstance(v, str) else _num(v), "", "", "", "", "",
                            *tail])
    return buf.getvalue()
