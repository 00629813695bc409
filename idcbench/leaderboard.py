"""Run directories -> comparison tables and leaderboards, with bootstrap confidence intervals and paired tests.

Everything here reads only run directories (``run_spec.json``, ``metrics.json``, ``per_sample.jsonl``) and the
shipped published results; outputs are a pure function of them (fixed bootstrap seed, stable ordering, no
timestamps), so regenerating a leaderboard from the same runs gives the same bytes.

- `load_run` / `discover_runs`: read run directories.
- `group_runs`: runs that differ only in their seed form one group (one table row: mean +- std over seeds).
- `compare`: one `Table` per (dataset, split) with 95 % bootstrap intervals and a paired bootstrap p-value
  against a baseline on CIDEr-D.
- `render_leaderboard` / `build_leaderboard` / `check_leaderboard`: ``README.md``, ``<dataset>.csv`` and
  ``index.html`` under an output folder; the demo and CI call these directly.

>>> cell = Cell(value=112.34, low=110.0, high=114.5)
>>> format_cell(cell)
'112.3 [110.0, 114.5]'
>>> format_cell(Cell(value=50.0, std=1.26, seeds=3))
'50.0 ± 1.3'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from idcbench import bootstrap as bs
from idcbench.data import CHANGE_TYPES
from idcbench.errors import UserError, read_json
from idcbench.scoring import METRICS_FILE, RETRIEVAL_FILE, load_samples

MAIN_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SPICE")
PRIMARY = "CIDEr-D"
KINDS = ("semantic", "distractor")
RETRIEVAL_COLUMNS = {"t2p_R@1": "R@1 t2p", "p2t_R@1": "R@1 p2t"}
MEAN_METRICS = ("ROUGE-L", "SPICE")  # corpus score = mean of the per-example scores (also every BERTScore[...])

Progress = Callable[[str, int, int], None]  # (description, done, total)


# ------------------------------------------------------------------------------------------------------- run dirs
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


# --------------------------------------------------------------------------------------------------------- groups
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


# -------------------------------------------------------------------------------------------------------- samples
def subset_rows(samples: Sequence[Mapping[str, Any]], subset: str) -> list[int] | None:
    """Positions of the samples in `subset`: ``total`` is all; otherwise a row's ``subsets`` list when present,
    else its tags (``kind`` = semantic/distractor, ``type`` = change type). None when membership is unknown."""
    if subset == "total":
        return list(range(len(samples)))
    if samples and all("subsets" in s for s in samples):
        return [i for i, s in enumerate(samples) if subset in s["subsets"]]
    keys = ("kind",) if subset in KINDS else ("type", "kind")
    hits = [i for i, s in enumerate(samples) if any((s.get("tags") or {}).get(k) == subset for k in keys)]
    return hits or None


def _stats(sample: Mapping[str, Any]) -> Mapping[str, Any]:
    return sample.get("stats") or {}


def _tokens(sample: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """PTB-tokenised hypothesis and references of a sample (``stats.hyp`` / ``stats.refs``), if present."""
    st = _stats(sample)
    hyp, refs = st.get("hyp"), st.get("refs")
    if isinstance(hyp, str) and isinstance(refs, list) and refs:
        return hyp, [str(r) for r in refs]
    return None


def metric_statistic(samples: Sequence[Mapping[str, Any]], metric: str) -> bs.Statistic | None:
    """A vectorised bootstrap statistic (0-1 scale) of `metric` over these samples, or None if they lack the data.

    Means of per-example scores for ROUGE-L, SPICE and BERTScore; BLEU from per-example counts; CIDEr-D and
    METEOR recomputed from tokens / METEOR statistics (`idcbench.bootstrap_metrics`). The rows that `save_report`
    writes carry all of these; rows without them (or SPICE / BERTScore without per-sample scores) get no interval.
    """
    from idcbench import bootstrap_metrics as bm

    if not samples:
        return None
    if metric in MEAN_METRICS or metric.startswith("BERTScore"):
        vals = [(s.get("scores") or {}).get(metric) for s in samples]
        if any(v is None for v in vals):
            return None
        return bs.MeanStatistic(vals)
    if metric.startswith("BLEU-"):
        order = int(metric.split("-")[1])
        rows = [_stats(s).get("bleu") for s in samples]
        if all(isinstance(r, (list, tuple)) and len(r) == 10 for r in rows):
            return bm.BleuStatistic.from_counts(np.asarray(rows), order)
        toks = [_tokens(s) for s in samples]
        if all(t is not None for t in toks):
            return bm.BleuStatistic([t[0] for t in toks], [t[1] for t in toks], order)
    elif metric == "CIDEr-D":
        toks = [_tokens(s) for s in samples]
        if all(t is not None for t in toks):
            return bm.CiderDStatistic([t[0] for t in toks], [t[1] for t in toks])
    elif metric == "METEOR":
        lines = [_stats(s).get("meteor") for s in samples]
        if all(isinstance(x, (str, list, tuple)) for x in lines):
            try:
                return bm.MeteorStatistic(lines)
            except ValueError:
                pass
    return None


def load_retrieval_ranks(run_dir: Path) -> list[dict] | None:
    """The run's per-pair retrieval ranks (``retrieval.jsonl``), sorted by id; None for runs without that file, a
    `UserError` for a file that is not one."""
    path = Path(run_dir) / RETRIEVAL_FILE
    if not path.is_file():
        return None
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not all(isinstance(r, dict) and "id" in r and isinstance(r.get("t2p"), list) for r in rows):
            raise ValueError("every row needs an id and a t2p list")
    except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
        raise UserError(f"{path}: not a retrieval ranks file ({e}); rerun `idcbench score` on the run") from None
    return sorted(rows, key=lambda r: str(r["id"]))


def retrieval_statistic(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[list[str], bs.Statistic]:
    """(pair ids, statistic) of a retrieval R@K column from per-pair ranks (`load_retrieval_ranks`). text->pair R@K
    is a ratio over the resampled pairs' captions, pair->text R@K a mean over the resampled queried pairs; the
    candidate set stays the whole split."""
    direction, k = metric.split("_R@")
    if direction == "t2p":
        hits = [sum(int(x) <= int(k) for x in r["t2p"]) for r in rows]
        stat: bs.Statistic = bs.RatioStatistic(hits, [len(r["t2p"]) for r in rows])
    else:
        rows = [r for r in rows if r.get("p2t") is not None]
        stat = bs.MeanStatistic([float(int(r["p2t"]) <= int(k)) for r in rows])
    return [str(r["id"]) for r in rows], stat


# --------------------------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Cell:
    """One table cell, x100: the value (mean over seeds), its std over seeds and its bootstrap interval."""

    value: float | None
    std: float | None = None
    low: float | None = None
    high: float | None = None
    seeds: int = 1


@dataclass
class Row:
    """A table row: a measured group or a published result."""

    label: str
    kind: str  # "measured" | "published"
    cells: dict[str, Cell]
    model: str = ""
    seeds: list[int | None] = field(default_factory=list)
    n: int | None = None
    p_value: float | None = None
    source: str = ""
    runs: list[str] = field(default_factory=list)  # run directories (measured rows)
    subset: str | None = None  # set when rows of one table come from different subsets (semantic / distractor)


@dataclass
class Table:
    """A titled table: rows x metric columns for one dataset split and subset."""

    title: str
    dataset: str
    split: str
    subset: str
    columns: list[str]
    rows: list[Row]
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)
    key: str = "main"  # which table of the dataset ("main", "types", "kinds")

    @property
    def measured(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "measured"]


def format_number(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def format_cell(cell: Cell | None, digits: int = 1, *, ci: bool = True) -> str:
    """``value [low, high]``, ``mean ± std [low, high]`` over seeds; ``–`` when missing."""
    if cell is None or cell.value is None:
        return "–"
    s = format_number(cell.value, digits)
    if cell.std is not None and cell.seeds > 1:
        s += f" ± {format_number(cell.std, digits)}"
    if ci and cell.low is not None and cell.high is not None:
        s += f" [{format_number(cell.low, digits)}, {format_number(cell.high, digits)}]"
    return s


def format_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


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


class _Stats:
    """Caches per-run samples and statistics while tables are built (statistics are costly to set up)."""

    def __init__(self) -> None:
        self._samples: dict[Path, list[dict] | None] = {}
        self._ranks: dict[Path, list[dict] | None] = {}
        self._stat: dict[tuple[Path, str, str], tuple[list[str], bs.Statistic] | None] = {}

    def samples(self, run: RunInfo) -> list[dict] | None:
        if run.path not in self._samples:
            try:
                rows = load_samples(run.path)
            except UserError:
                rows = None
            if rows is not None:
                rows = sorted(rows, key=lambda s: str(s.get("id")))
            self._samples[run.path] = rows
        return self._samples[run.path]

    def ranks(self, run: RunInfo) -> list[dict] | None:
        """The run's per-pair retrieval ranks, read once; None when missing or unreadable (no interval)."""
        if run.path not in self._ranks:
            try:
                self._ranks[run.path] = load_retrieval_ranks(run.path)
            except UserError:
                self._ranks[run.path] = None
        return self._ranks[run.path]

    def get(self, run: RunInfo, subset: str, metric: str) -> tuple[list[str], bs.Statistic] | None:
        """(sorted ids, statistic) of `metric` on `subset` of a run, or None when it cannot be resampled."""
        key = (run.path, subset, metric)
        if key not in self._stat:
            self._stat[key] = None
            if metric in RETRIEVAL_COLUMNS:
                ranks = self.ranks(run) if subset == "total" else None
                self._stat[key] = retrieval_statistic(ranks, metric) if ranks else None
                return self._stat[key]
            samples = self.samples(run)
            if samples:
                pos = subset_rows(samples, subset)
                expected = run.n(subset)
                if pos is not None and (expected is None or expected == len(pos)):
                    rows = [samples[i] for i in pos]
                    stat = metric_statistic(rows, metric)
                    if stat is not None:
                        self._stat[key] = ([str(s.get("id")) for s in rows], stat)
        return self._stat[key]

    def group(self, group: Group, subset: str, metric: str) -> tuple[list[str], bs.Statistic] | None:
        """The seed-mean statistic of a group (all its runs must cover the same ids)."""
        parts = [self.get(r, subset, metric) for r in group.runs]
        if any(p is None for p in parts):
            return None
        ids = parts[0][0]
        if any(p[0] != ids for p in parts[1:]):
            return None
        stat = parts[0][1] if len(parts) == 1 else bs.MeanOf([p[1] for p in parts])
        return ids, stat


def _group_cell(group: Group, metric: str, subset: str, cache: _Stats | None, resamples: int, seed: int) -> Cell:
    vals = [r.value(metric, subset) for r in group.runs]
    vals = [v for v in vals if v is not None]
    if not vals or len(vals) != len(group.runs):
        return Cell(None, seeds=len(group.runs))
    mean = float(np.mean(vals))
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    low = high = None
    if cache is not None and resamples > 0:
        got = cache.group(group, subset, metric)
        if got is not None:
            ids, stat = got
            ci = bs.confidence_interval(stat, len(ids), resamples=resamples, seed=seed, point=mean / 100)
            if not (math.isnan(ci.low) or math.isnan(ci.high)):
                low, high = ci.low * 100, ci.high * 100
    return Cell(mean, std, low, high, len(group.runs))


def _measured_row(group: Group, columns: Sequence[str], subset: str, cache: _Stats | None, resamples: int,
                  seed: int) -> Row:
    cells = {m: _group_cell(group, m, subset, cache, resamples, seed) for m in columns}
    ns = {r.n(subset) for r in group.runs}
    return Row(label=group.label, kind="measured", cells=cells, model=group.model, seeds=group.seeds,
               n=ns.pop() if len(ns) == 1 else None, runs=[str(r.path) for r in group.runs])


def _sort_rows(rows: list[Row], metric: str) -> list[Row]:
    def key(r: Row) -> tuple:
        c = r.cells.get(metric)
        v = c.value if c is not None and c.value is not None else -math.inf
        return (-v, r.label)

    return sorted(rows, key=key)


def paired_p_value(model: Group, baseline: Group, *, subset: str = "total", metric: str = PRIMARY,
                   resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                   cache: _Stats | None = None) -> float | None:
    """Two-sided paired bootstrap p-value of `model` vs `baseline` on `metric` (seed means when several seeds).

    Both must cover the same example ids (else `UserError`); None when per-example data are missing.
    """
    if resamples <= 0:
        return None
    cache = cache or _Stats()
    a, b = cache.group(model, subset, metric), cache.group(baseline, subset, metric)
    if a is None or b is None:
        return None
    (ids_a, stat_a), (ids_b, stat_b) = a, b
    if ids_a != ids_b:
        only_a, only_b = len(set(ids_a) - set(ids_b)), len(set(ids_b) - set(ids_a))
        raise UserError(f"cannot pair {model.label} with baseline {baseline.label} on {model.dataset}/{subset}: "
                        f"they cover different examples ({only_a} ids only in the model's run, {only_b} only in the "
                        "baseline's); compare runs of the same dataset split and limit")
    return bs.paired_test(stat_a, stat_b, len(ids_a), resamples=resamples, seed=seed).p_value


def _find_baseline(groups: Sequence[Group], baseline: str) -> Group | None:
    hits = [g for g in groups if g.label == baseline] or [g for g in groups if g.model == baseline]
    if len(hits) > 1:
        raise UserError(f"--baseline {baseline!r} matches several configurations: "
                        f"{', '.join(g.label for g in hits)}; pass one of these labels")
    return hits[0] if hits else None


def compare(runs: Sequence[RunInfo], *, subset: str = "total", baseline: str | None = None,
            resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED, columns: Sequence[str] | None = None,
            progress: Progress | None = None) -> list[Table]:
    """One table per (dataset, split): a row per configuration (mean ± std over seeds), each metric with its
    95 % bootstrap interval, and the paired bootstrap p-value against `baseline` on CIDEr-D."""
    if not runs:
        raise UserError("no finished runs to compare (a run directory has metrics.json; `idcbench run` makes one)")
    groups = group_runs(runs)
    cache = _Stats()
    by_split: dict[tuple[str, str], list[Group]] = {}
    for g in groups:
        by_split.setdefault((g.dataset, g.split), []).append(g)
    if baseline is not None and not any(_find_baseline(gs, baseline) for gs in by_split.values()):
        known = sorted({g.label for g in groups})
        raise UserError(f"--baseline {baseline!r}: no such model among the runs (models: {', '.join(known)})")
    total = sum(len(gs) for gs in by_split.values())
    done = 0
    tables = []
    for (dataset, split), gs in sorted(by_split.items()):
        members = [r for g in gs for r in g.runs]
        cols = list(columns) if columns else metric_columns(members, subset)
        if not any(r.subset(subset) for r in members):
            raise UserError(f"{dataset}/{split}: no run has subset {subset!r} "
                            f"(subsets: {', '.join(sorted({s for r in members for s in r.metrics.get('subsets', {})}))})")
        base = _find_baseline(gs, baseline) if baseline else None
        rows = []
        for g in gs:
            if progress:
                progress(f"{dataset}: {g.label}", done, total)
            row = _measured_row(g, cols, subset, cache, resamples, seed)
            if base is not None and g is not base and PRIMARY in cols:
                row.p_value = paired_p_value(g, base, subset=subset, resamples=resamples, seed=seed, cache=cache)
            rows.append(row)
            done += 1
        table = Table(title=f"{dataset} ({split}, {subset})", dataset=dataset, split=split, subset=subset,
                      columns=cols, rows=_sort_rows(rows, PRIMARY), baseline=base.label if base else None)
        table.notes.append(_ci_note(resamples, seed))
        tables.append(table)
    if progress:
        progress("done", total, total)
    return tables


def _ci_note(resamples: int, seed: int) -> str:
    if resamples <= 0:
        return "No confidence intervals (resampling disabled)."
    return (f"Values x100. [low, high] = 95 % percentile bootstrap interval over test examples ({resamples} "
            f"resamples, seed {seed}; R@1 resamples the queried pairs against the fixed candidate set); "
            "± = standard deviation over seeds when a model has several.")


# ------------------------------------------------------------------------------------------------ leaderboards
def dataset_tables(dataset: str, split: str, groups: Sequence[Group], *, resamples: int = bs.DEFAULT_RESAMPLES,
                   seed: int = bs.DEFAULT_SEED, cache: _Stats | None = None, published_rows: bool = True,
                   progress: Progress | None = None) -> list[Table]:
    """The leaderboard tables of one dataset split: main metrics on ``total`` (measured + published rows); for
    data with change types, CIDEr-D per change type and the semantic/distractor split."""
    from idcbench.published import published

    cache = cache or _Stats()
    runs = [r for g in groups for r in g.runs]
    pub = published(dataset) if published_rows and split == "test" else []
    cols = metric_columns(runs, "total")
    for m in MAIN_METRICS:  # published columns shown even if no measured run has them
        if m not in cols and any(p.value(m) is not None for p in pub):
            cols.insert(min(MAIN_METRICS.index(m), len(cols)), m)
    tables = []
    rows = [_measured_row(g, cols, "total", cache, resamples, seed) for g in groups]
    if progress:
        progress(f"{dataset}: main table", 0, 3)
    main = Table(title=f"{dataset} ({split})", dataset=dataset, split=split, subset="total", columns=cols,
                 rows=_sort_rows(rows, PRIMARY) + [_published_row(p, cols, "total") for p in pub], key="main")
    main.notes.append(_ci_note(resamples, seed))
    if pub:
        main.notes.append("Rows marked 'published' are reported numbers (their sources below), not measured here; "
                          "they differ in backbone, training data and sometimes scorer.")
    tables.append(main)

    subsets = sorted({s for r in runs for s in r.metrics.get("subsets", {})})
    types = [t for t in CHANGE_TYPES if t in subsets]
    others = [s for s in subsets if s not in types and s not in KINDS and s != "total"]
    ranked = [next(g for g in groups if g.label == r.label) for r in main.measured]
    if types:
        if progress:
            progress(f"{dataset}: change types", 1, 3)
        tcols = types + [s for s in ("distractor",) if s in subsets] + others
        trows = []
        for g in ranked:
            cells = {s: _group_cell(g, PRIMARY, s, cache, resamples, seed) for s in tcols}
            trows.append(Row(label=g.label, kind="measured", cells=cells, model=g.model, seeds=g.seeds,
                             runs=[str(r.path) for r in g.runs]))
        trows += [_published_row(p, tcols, None, metric=PRIMARY) for p in pub
                  if any(p.value(PRIMARY, t) is not None for t in tcols)]
        t = Table(title=f"{dataset} ({split}): CIDEr-D per change type", dataset=dataset, split=split,
                  subset="*", columns=tcols, rows=trows, key="types")
        t.notes.append("CIDEr-D x100 on each subset, each scored as its own corpus.")
        tables.append(t)
    kinds = [k for k in KINDS if k in subsets]
    if kinds:
        if progress:
            progress(f"{dataset}: semantic / distractor", 2, 3)
        kcols = [c for c in cols if c not in RETRIEVAL_COLUMNS]
        krows = []
        for g in ranked:
            for k in kinds:
                row = _measured_row(g, kcols, k, cache, resamples, seed)
                row.subset = k
                krows.append(row)
        for p in pub:
            for k in kinds:
                if any(p.value(m, k) is not None for m in kcols):
                    row = _published_row(p, kcols, k)
                    row.subset = k
                    krows.append(row)
        t = Table(title=f"{dataset} ({split}): semantic change vs distractor", dataset=dataset, split=split,
                  subset="kind", columns=kcols, rows=krows, key="kinds")
        t.notes.append("Semantic = pairs with a real change; distractor = pairs without one (viewpoint or "
                       "lighting changes only).")
        tables.append(t)
    return tables


def _published_row(p: Any, columns: Sequence[str], subset: str | None, metric: str | None = None) -> Row:
    if subset is None:  # columns are subsets of one metric
        cells = {c: Cell(p.value(metric, c)) for c in columns}
    else:
        cells = {c: Cell(p.value(c, subset)) for c in columns}
    source = p.source + (f"; {p.note}" if p.note else "")
    return Row(label=p.label, kind="published", cells=cells, model=p.method, source=source)


def leaderboard_tables(runs_dir: str | Path, *, resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                       progress: Progress | None = None) -> dict[tuple[str, str], list[Table]]:
    """All leaderboard tables: (dataset, split) -> tables, in sorted order."""
    groups = group_runs(discover_runs(runs_dir))
    cache = _Stats()
    out: dict[tuple[str, str], list[Table]] = {}
    keys = sorted({(g.dataset, g.split) for g in groups})
    for i, (dataset, split) in enumerate(keys):
        if progress:
            progress(f"{dataset} ({split})", i, len(keys))
        gs = [g for g in groups if (g.dataset, g.split) == (dataset, split)]
        out[(dataset, split)] = dataset_tables(dataset, split, gs, resamples=resamples, seed=seed, cache=cache)
    if progress:
        progress("done", len(keys), len(keys))
    return out


def render_leaderboard(runs_dir: str | Path, *, resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                       progress: Progress | None = None) -> dict[str, str]:
    """The leaderboard files as {relative path: text}: README.md, <dataset>.csv, index.html. Pure function of
    the run directories."""
    from idcbench import render

    tables = leaderboard_tables(runs_dir, resamples=resamples, seed=seed, progress=progress)
    files = {"README.md": render.leaderboard_markdown(tables), "index.html": render.leaderboard_html(tables)}
    for dataset in sorted({d for d, _ in tables}):
        files[f"{dataset}.csv"] = render.tables_csv([t for (d, _), ts in tables.items() if d == dataset for t in ts])
    return files


def build_leaderboard(runs_dir: str | Path = "runs", out_dir: str | Path = "leaderboard", *,
                      resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                      progress: Progress | None = None) -> list[Path]:
    """Write the leaderboard files under `out_dir` (only files whose content changed are rewritten); returns
    their paths. Stale ``<dataset>.csv`` files of datasets without runs are removed."""
    from idcbench.files import write_atomic

    out_dir = Path(out_dir)
    files = render_leaderboard(runs_dir, resamples=resamples, seed=seed, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files.items():
        path = out_dir / name
        if not path.exists() or path.read_bytes() != text.encode("utf-8"):
            write_atomic(path, text.encode("utf-8"))
        paths.append(path)
    for stale in _stale_files(out_dir, files):
        stale.unlink()
    return paths


def _stale_files(out_dir: Path, files: Mapping[str, str]) -> list[Path]:
    return sorted(p for p in out_dir.glob("*.csv") if p.name not in files)


def check_leaderboard(runs_dir: str | Path = "runs", out_dir: str | Path = "leaderboard", *,
                      resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                      progress: Progress | None = None) -> list[str]:
    """Differences between the files under `out_dir` and what the runs give ([] = up to date)."""
    out_dir = Path(out_dir)
    files = render_leaderboard(runs_dir, resamples=resamples, seed=seed, progress=progress)
    diffs = []
    for name, text in files.items():
        path = out_dir / name
        if not path.exists():
            diffs.append(f"{path}: missing")
        elif path.read_bytes() != text.encode("utf-8"):
            diffs.append(f"{path}: differs from what the runs give")
    diffs += [f"{p}: no runs of this dataset (stale)" for p in _stale_files(out_dir, files)]
    return diffs
