"""Run directories: read them (`load_run`, `discover_runs`, `load_runs`) and group the seeds of one configuration
(`group_runs`). Reads only ``run_spec.json`` and ``metrics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from idcbench.errors import UserError
from idcbench.protocol import Protocol, protocol_of
from idcbench.rundir import METRICS_FILE, read_cost, read_metrics, read_spec
from idcbench.tables.model import RETRIEVAL_COLUMNS, config_labels, is_column, metric_order


@dataclass(frozen=True)
class RunInfo:
    """One finished run directory: its spec, its metrics.json, where it lives and where its data was read from."""

    path: Path
    spec: Mapping[str, Any]
    metrics: Mapping[str, Any]
    data_root: str | None = None  # recorded beside the spec in run_spec.json (not part of the run's identity)

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
    def protocol(self) -> Protocol:
        """The protocol the run was scored with (runs from before protocols: the dataset's default)."""
        return protocol_of(self.dataset, self.spec.get("protocol") or None)

    @property
    def table_split(self) -> str:
        """The split, and the protocol when it is not the dataset's default: runs of two protocols never share a
        table (``test`` / ``test, rsicc``)."""
        default = protocol_of(self.dataset).name
        return self.split if self.protocol.name == default else f"{self.split}, {self.protocol.name}"

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

    @property
    def cost(self) -> Mapping[str, Any]:
        """What the run cost (its ``cost.json``; empty when it has none, e.g. a light copy)."""
        return read_cost(self.path)

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
    metrics = read_metrics(run_dir)
    raw = read_spec(run_dir)
    spec = raw.get("spec", raw)
    root = raw.get("data_root")
    return RunInfo(run_dir, spec, metrics, root if isinstance(root, str) else None)


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
    """Runs of one configuration on one dataset split (and protocol: `RunInfo.table_split`), one per seed; `label` and
    `settings` tell it from the other configurations of its table (`idcbench.tables.model.config_labels`)."""

    dataset: str
    split: str
    model: str
    label: str
    runs: list[RunInfo]
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    @property
    def protocol(self) -> Protocol:
        return self.runs[0].protocol


def group_runs(runs: Iterable[RunInfo]) -> list[Group]:
    """Group runs by (dataset, split, spec without seed) and label each group (`config_labels`: the model name, plus
    the settings that tell apart the configurations of one model in one table). Sorted by (dataset, split, label)."""
    by_key: dict[tuple[str, str, str], list[RunInfo]] = {}
    for r in runs:
        by_key.setdefault((r.dataset, r.table_split, r.group_key), []).append(r)
    groups = []
    for (dataset, split, _), members in by_key.items():
        members.sort(key=lambda r: (r.seed if r.seed is not None else -1, str(r.path)))
        seeds = [r.seed for r in members]
        if len(set(seeds)) != len(seeds):
            dup = sorted({str(s) for s in seeds if seeds.count(s) > 1})
            raise UserError(f"{members[0].path.parent}: several runs with the same spec and seed {', '.join(dup)}; "
                            "remove the duplicate run directories")
        groups.append(Group(dataset, split, members[0].model, members[0].model, members))
    tables: dict[tuple[str, str], list[Group]] = {}
    for g in groups:
        tables.setdefault((g.dataset, g.split), []).append(g)
    for same_table in tables.values():
        labels = config_labels([(g.model, {k: v for k, v in g.runs[0].spec.items() if k != "seed"})
                                for g in same_table], [g.runs[0].data_root for g in same_table])
        for g, label in zip(same_table, labels):
            g.label, g.settings = label.text, label.settings
    return sorted(groups, key=lambda g: (g.dataset, g.split, g.label))


def metric_columns(runs: Iterable[RunInfo], subset: str = "total") -> list[str]:
    """Columns present in any run: the metrics that are table columns (`is_column`: BLEU-4, METEOR, ROUGE-L,
    CIDEr-D, SPICE, BERTScore[...], ...) in their order, then retrieval R@1."""
    runs = list(runs)
    present = set()
    for r in runs:
        sub = r.subset(subset) or {}
        present.update(k for k, v in (sub.get("metrics") or {}).items() if v is not None)
        if subset == "total":
            present.update(k for k, v in (r.metrics.get("retrieval") or {}).items() if v is not None)
    cols = sorted((m for m in present if is_column(m)), key=metric_order)
    cols += [m for m in RETRIEVAL_COLUMNS if m in present]
    return cols
