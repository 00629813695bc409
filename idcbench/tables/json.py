"""Tables -> JSON (`compare --format json`): every cell's value, std, interval and seed count (or its flag: a cell
left out as ``too_small``), and each row's distinguishing settings."""

from __future__ import annotations

import json
from typing import Any, Sequence

from idcbench.tables.model import Cell, Table


def _cell_json(c: Cell | None) -> dict[str, Any] | None:
    if c is not None and c.flag:
        return {"value": None, "flag": c.flag, "seeds": c.seeds}
    if c is None or c.value is None:
        return None
    return {"value": c.value, "std": c.std, "ci_low": c.low, "ci_high": c.high, "seeds": c.seeds}


def tables_json(tables: Sequence[Table]) -> str:
    out = []
    for t in tables:
        out.append({
            "title": t.title, "dataset": t.dataset, "split": t.split, "subset": t.subset, "table": t.key,
            "columns": t.columns, "baseline": t.baseline, "notes": t.notes, "warnings": t.warnings,
            "rows": [{"label": r.label, "type": r.kind, "model": r.model, "settings": r.settings, "seeds": r.seeds,
                      "n": r.n,
                      "p_value": r.p_value, "source": r.source or None, "runs": r.runs,
                      "metrics": {c: _cell_json(r.cells.get(c)) for c in t.columns},
                      **({"cost": {c: r.cost.get(c) for c in t.cost_columns}} if t.cost_columns else {})}
                     for r in t.rows],
        })
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"
