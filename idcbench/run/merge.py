"""The scores a run directory already holds, and newly computed metrics merged into them.

Scoring a finished run again with other metrics (``idcbench run ... --metrics SPICE``) adds them: ``metrics.json``
and ``per_sample.jsonl`` keep every metric computed before on the same predictions. Scores of other predictions (a
different spec hash, or a caption that changed) are never kept.

>>> old = {"subsets": {"total": {"n": 2, "metrics": {"BLEU-4": 30.0, "CIDEr-D": 90.0}}}, "unavailable": {},
...        "metric_info": {}}
>>> new = {"subsets": {"total": {"n": 2, "metrics": {"METEOR": 25.0}}}, "unavailable": {}, "metric_info": {}}
>>> merge_metrics(old, new)["subsets"]["total"]["metrics"]
{'BLEU-4': 30.0, 'METEOR': 25.0, 'CIDEr-D': 90.0}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from idcbench.registry import METRICS
from idcbench.rundir import METRICS_FILE, RETRIEVAL_FILE, SAMPLES_FILE


@dataclass
class Held:
    """What ``metrics.json`` and ``per_sample.jsonl`` of a run directory hold."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def names(self) -> set[str]:
        """The metrics computed (an unavailable one, e.g. SPICE without its jars, is not)."""
        total = (self.metrics.get("subsets") or {}).get("total") or {}
        return set(total.get("metrics") or {}) - set(self.metrics.get("unavailable") or {})

    @property
    def has_retrieval(self) -> bool:
        return bool(self.metrics.get("retrieval"))


def held_scores(run_dir: Path, spec_hash: str, predictions: Mapping[str, str] | None = None) -> Held | None:
    """The scores in `run_dir` when they belong to the run `spec_hash` (and, given `predictions`, were computed on
    exactly these captions); None when there are none, they are unreadable or they belong to something else."""
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
        with open(run_dir / SAMPLES_FILE, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or (metrics.get("run") or {}).get("spec_hash") != spec_hash:
        return None
    if predictions is not None and {r.get("id"): r.get("prediction") for r in rows} != dict(predictions):
        return None
    if metrics.get("retrieval") and not (run_dir / RETRIEVAL_FILE).exists():
        metrics.pop("retrieval")
    return Held(metrics, rows)


def _ordered(values: Mapping[str, Any]) -> dict[str, Any]:
    from idcbench.metrics import get

    return {m: values[m] for m in sorted(values, key=lambda m: (get(m).order if m in METRICS else 1e9, m))}


def merge_metrics(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics.json`` content: `new`, with the metrics only `old` has kept in every subset."""
    out = dict(new)
    out["subsets"] = {}
    for name, sub in (new.get("subsets") or {}).items():
        before = ((old.get("subsets") or {}).get(name) or {}).get("metrics") or {}
        out["subsets"][name] = {**sub, "metrics": _ordered({**before, **(sub.get("metrics") or {})})}
    computed = set(((new.get("subsets") or {}).get("total") or {}).get("metrics") or {})
    unavailable = {m: why for m, why in (old.get("unavailable") or {}).items() if m not in computed}
    out["unavailable"] = {**unavailable, **(new.get("unavailable") or {})}
    out["metric_info"] = {**(old.get("metric_info") or {}), **(new.get("metric_info") or {})}
    if "retrieval" not in out and old.get("retrieval"):
        out["retrieval"] = old["retrieval"]
    return out


def merge_rows(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``per_sample.jsonl`` rows: `new`, each with the scores (and rescoring statistics) only its `old` row has."""
    before = {r.get("id"): r for r in old}
    out = []
    for row in new:
        prev = before.get(row["id"]) or {}
        stats = {k: v if v is not None else (prev.get("stats") or {}).get(k) for k, v in (row.get("stats") or {}).items()}
        out.append({**row, "scores": _ordered({**(prev.get("scores") or {}), **(row.get("scores") or {})}),
                    "stats": stats})
    return out
