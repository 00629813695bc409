"""Run directories: read them (`load_run`, `discover_runs`, `load_runs`) and group the seeds of one configuration
(`group_runs`). Reads only ``run_spec.json`` and ``metrics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from idcbench.errors import UserError, read_json
from idcbench.scoring import METRICS_FILE
from idcbench.tables.model import MAIN_METRICS, RETRIEVAL_COLUMNS


@dataclass(frozen=True)
class RunInfo:
    """One finished run directory: its spec, its metrics.json and where it lives."""

    path: Path
    spec: Mapping[str, Any]
    metrics: Mapping[str, Any]

    @property
    def model(self) -> str:
        return str(self.spec.get("model") or self.metrics.get("run", {}).get("model") or self.path.parent.name)

    @property
    def dataset(self) -> str:
        return str(self.spec.get("dataset") or self.metrics.get("run", {}).get("dataset") or self.path.parent.parent.name)

    @property
    def split(self) -> str:
        return str(self.spec.get("split") or self.metrics.get("run", {}).get("split") or "test")

    @property
    def seed(self) -> int | None:
        seed = self.spec.get("seed", self.metrics.get("run", {}).get("seed"))
        return None if seed is None else int(seed)

    @property
    def spec_hash(self) -> str:
        return str(self.metrics.get("run", {}).get("spec_hash") or self.path.name)

    @property
    def group_key(self) -> str:
        """The spec without its seed: runs with equal keys are seeds of one configuration."""
        rest = {k: v for k, v in self.spec.items() if k != "seed"}
        return json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)

    def subset(self, name: str) -> Mapping[str, Any] | None:
        return self.metrics.get("subsets", {}).get(name)

    def value(self, metric: str, subset: str = "total") -> float | None:
        """A corpus score x100 from metrics.json (retrieval columns from its ``retrieval`` block)."""
        if metric in RETRIEVAL_COLUMNS:
            v = (self.metrics.get("retrieval") or {}).get(metric)
            return None if subset != "total" or v is None else float(v)
        sub = self.subset(subset)
        v = None if sub is None else sub.get("metrics", {}).get(metric)
        return None if v is None else float(v)

    def n(self, subset: str = "total") -> int | None:
        sub = self.subset(subset)
        return None if sub is None or sub.get("n") is None else int(sub["n"])


def load_run(run_dir: str | Path) -> RunInfo:
    """Read a run directory (``run_spec.json`` + ``metrics.json``); a `UserError` says what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    if not (run_dir / METRICS_FILE).exists():
        raise UserError(f"{run_dir}: no metrics.json (unfinished run?); finish it with `idcbench run` first")
    metrics = read_json(run_dir / METRICS_FILE, what="metrics file")
    spec_file = run_dir / "run_spec.json"
    raw = read_json(spec_file, what="run spec") if spec_file.exists() else {}
    spec = raw.get("spec", raw) if isinstance(raw, dict) else {}
    if not isinstance(metrics, dict) or "subsets" not in metrics:
        raise UserError(f"{run_dir / 'metrics.json'}: not an idcbench metrics file (no 'subsets')")
    return RunInfo(run_dir, spec, metrics)


def discover_runs(runs_dir: str | Path, dataset: str | None = None) -> list[RunInfo]:
    """All finished runs under `runs_dir` (any depth; a run is a folder with metrics.json, and what lies inside a
    run is part of it), sorted by path."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir}: runs directory not found (pass --runs-dir or run directories)")
    dirs = sorted(p.parent for p in runs_dir.rglob(METRICS_FILE))
    found: list[Path] = []
    for d in dirs:  # files inside a run directory (e.g. a model's own metrics.json) are not runs
        if not any(parent in found for parent in d.parents):
            found.append(d)
    runs = [load_run(d) for d in found]
    if dataset is not None:
        runs = [r for r in runs if r.dataset == dataset]
    return runs


def load_runs(paths: Iterable[str | Path]) -> list[RunInfo]:
    """Runs from command-line paths: a run directory, or any folder holding run directories below it."""
    runs: list[RunInfo] = []
    for p in paths:
        p = Path(p)
        if (p / METRICS_FILE).exists() or not p.is_dir():
            runs.append(load_run(p))
        else:
            found = discover_runs(p)
            if not found:
                raise UserError(f"{p}: no finished run below this folder (a run directory has metrics.json)")
            runs += found
    return runs


@dataclass
class Group:
    """Runs of one configuration on one dataset split, one per seed."""

    dataset: str
    split: str
    model: str
    label: str
    runs: list[RunInfo]

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]


def group_runs(runs: Iterable[RunInfo]) -> list[Group]:
    """Group runs by (dataset, split, spec without seed); label each group by its model name, plus the config
    entries that tell apart groups of the same model. Sorted by (dataset, split, label)."""
    by_key: dict[tuple[str, str, str], list[RunInfo]] = {}
    for r in runs:
        by_key.setdefault((r.dataset, r.split, r.group_key), []).append(r)
    groups = []
    for (dataset, split, _), members in by_key.items():
        members.sort(key=lambda r: (r.seed if r.seed is not None else -1, str(r.path)))
        seeds = [r.seed for r in members]
        if len(set(seeds)) != len(seeds):
            dup = sorted({str(s) for s in seeds if seeds.count(s) > 1})
            raise UserError(f"{members[0].path.parent}: several runs with the same spec and seed {', '.join(dup)}; "
                            "remove the duplicate run directories")
        groups.append(Group(dataset, split, members[0].model, members[0].model, members))
    _disambiguate(groups)
    return sorted(groups, key=lambda g: (g.dataset, g.split, g.label))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _disambiguate(groups: list[Group]) -> None:
    by_model: dict[tuple[str, str, str], list[Group]] = {}
    for g in groups:
        by_model.setdefault((g.dataset, g.split, g.model), []).append(g)
    for same in by_model.values():
        if len(same) < 2:
            continue
        flat = [_flatten({k: v for k, v in g.runs[0].spec.items() if k not in ("seed", "model")}) for g in same]
        keys = sorted({k for f in flat for k in f})
        differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1]
        for g, f in zip(same, flat):
            parts = [f"{k.removeprefix('config.')}={_short(f.get(k))}" for k in differ[:3]]
            if len(differ) > 3 or not parts:
                parts.append(g.runs[0].spec_hash[:8])
            g.label = f"{g.model} ({', '.join(parts)})"


def _short(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= 24 else s[:12] + "…" + s[-8:]


def metric_columns(runs: Iterable[RunInfo], subset: str = "total") -> list[str]:
    """Columns present in any run: the main COCO metrics, BERTScore[...] variants, then retrieval R@1."""
    runs = list(runs)
    present = set()
    for r in runs:
        sub = r.subset(subset) or {}
        present.update(k for k, v in (sub.get("metrics") or {}).items() if v is not None)
        if subset == "total":
            present.update(k for k, v in (r.metrics.get("retrieval") or {}).items() if v is not None)
    cols = [m for m in MAIN_METRICS if m in present]
    cols += sorted(m for m in present if m.startswith("BERTScore"))
    cols += [m for m in RETRIEVAL_COLUMNS if m in present]
    return cols
