"""Training curves: one JSON line per validation, appended as training goes, read back for the pictures.

Every model that selects on val writes its curve into its training folder as ``<stage>_log.jsonl`` (CLIP4IDC:
``stage1_log.jsonl`` (text-to-pair R@1) and ``stage2_log.jsonl`` (CIDEr-D); DUDA: ``val_log.jsonl``), rows
``{"epoch", "step", "seconds", "val", "metric"}``. A resumed fit reopens its log at the epoch it resumes from: rows a
kill left after the saved state are dropped, so a killed and resumed fit logs each epoch once.

>>> import tempfile; folder = Path(tempfile.mkdtemp())
>>> log = ValLog(folder / "val_log.jsonl", start_epoch=0); log.add(1, 75, 12.5, 61.2, "CIDEr-D")
>>> log.add(2, 150, 25.0, 80.4, "CIDEr-D")
>>> ValLog(folder / "val_log.jsonl", start_epoch=1).rows()  # resumed after epoch 1: epoch 2 is redone
[{'epoch': 1, 'step': 75, 'seconds': 12.5, 'val': 61.2, 'metric': 'CIDEr-D'}]
>>> list(read_curves(folder))
['val']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from idcbench.files import write_atomic

VAL_LOG = "val_log.jsonl"
SUFFIX = "_log.jsonl"


class ValLog:
    """The curve file of one stage; `start_epoch`: the epochs already done (rows after them are dropped)."""

    def __init__(self, path: str | Path, start_epoch: int = 0):
        self.path = Path(path)
        kept = [r for r in self.rows() if int(r.get("epoch", 0)) <= start_epoch]
        if self.path.exists() and len(kept) != len(self.rows()):
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a kill
                continue
        return out

    def add(self, epoch: int, step: int, seconds: float, val: float | None, metric: str) -> None:
        row = {"epoch": epoch, "step": step, "seconds": round(float(seconds), 2),
               "val": None if val is None or val != val else round(float(val), 4), "metric": metric}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def read_curves(folder: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every curve in `folder`: stage name (the file name without ``_log.jsonl``) -> rows, in name order."""
    folder = Path(folder)
    return {p.name[: -len(SUFFIX)]: ValLog(p, start_epoch=10**9).rows() for p in sorted(folder.glob(f"*{SUFFIX}"))}
