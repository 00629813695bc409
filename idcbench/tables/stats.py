"""Bootstrap statistics of runs: per-sample rows -> vectorised statistics, interval cells over seeds, paired tests.

`Stats` reads each run's ``per_sample.jsonl`` and ``retrieval.jsonl`` once, and says why when one cannot be used
(`Stats.problems`: missing, unreadable or truncated); `group_cell` gives a table cell (mean over seeds, std, 95 %
interval); `paired_p_value` tests a model against a baseline on the same examples.

>>> subset_rows([{"id": "a", "tags": {"kind": "semantic"}}, {"id": "b", "tags": {"kind": "distractor"}}], "semantic")
[0]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from idcbench import bootstrap as bs
from idcbench.errors import UserError
from idcbench.rundir import METRICS_FILE, RETRIEVAL_FILE, SAMPLES_FILE, load_samples, read_retrieval_ranks
from idcbench.tables.model import PRIMARY, RETRIEVAL_COLUMNS, Cell, metric_cell
from idcbench.tables.runs import Group, RunInfo


def subset_rows(samples: Sequence[Mapping[str, Any]], subset: str) -> list[int] | None:
    """Positions of the samples in `subset`: ``total`` is all; otherwise a row's ``subsets`` list when present,
    else (rows written before they named their subsets) the rows with a tag of that value or ``key=value``. None
    when membership is unknown (callers then check the count against metrics.json)."""
    if subset == "total":
        return list(range(len(samples)))
    if samples and all("subsets" in s for s in samples):
        return [i for i, s in enumerate(samples) if subset in s["subsets"]]

    def tagged(tags: Mapping[str, Any]) -> bool:
        return any(v == subset or f"{k}={v}" == subset for k, v in tags.items())

    hits = [i for i, s in enumerate(samples) if tagged(s.get("tags") or {})]
    return hits or None


def metric_statistic(samples: Sequence[Mapping[str, Any]], metric: str) -> bs.Statistic | None:
    """The metric's vectorised bootstrap statistic (0-1 scale) over these samples (`idcbench.metrics.Metric.statistic`),
    or None if they lack the data it needs (or `metric` is not known here)."""
    from idcbench.metrics import get
    from idcbench.registry import METRICS

    if not samples or metric not in METRICS:
        return None
    return get(metric).statistic(samples)


def retrieval_statistic(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[list[str], bs.Statistic]:
    """(pair ids, statistic) of a retrieval R@K column from per-pair ranks (`idcbench.rundir.read_retrieval_ranks`). text->pair R@K
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


class Stats:
    """Caches per-run samples and statistics while tables are built (statistics are costly to set up)."""

    def __init__(self) -> None:
        self._samples: dict[Path, list[dict] | None] = {}
        self._ranks: dict[Path, list[dict] | None] = {}
        self._stat: dict[tuple[Path, str, str], tuple[list[str], bs.Statistic] | None] = {}
        self._problems: dict[Path, list[str]] = {}

    def problems(self, run: RunInfo) -> list[str]:
        """Why the per-example files of `run` read so far give no intervals (one short reason each, no paths)."""
        return list(self._problems.get(run.path, []))

    def _problem(self, run: RunInfo, reason: str) -> None:
        self._problems.setdefault(run.path, []).append(reason)

    def samples(self, run: RunInfo) -> list[dict] | None:
        """The run's per-sample rows sorted by id, read once; None (and a `problems` entry) when the file is missing,
        unreadable or holds another number of rows than metrics.json counts (a truncated file)."""
        if run.path not in self._samples:
            rows = None
            try:
                rows = load_samples(run.path)
            except UserError as e:
                path = run.path / SAMPLES_FILE
                self._problem(run, f"{SAMPLES_FILE} is missing" if not path.is_file() else
                              f"{SAMPLES_FILE}: {str(e).removeprefix(f'{path}: ')} (truncated?)")
            n = run.n("total")
            if rows is not None and n is not None and len(rows) != n:
                self._problem(run, f"{SAMPLES_FILE} has {len(rows)} rows for the {n} examples of {METRICS_FILE} "
                                   "(truncated?)")
                rows = None
            if rows is not None:
                rows = sorted(rows, key=lambda s: str(s.get("id")))
            self._samples[run.path] = rows
        return self._samples[run.path]

    def ranks(self, run: RunInfo) -> list[dict] | None:
        """The run's per-pair retrieval ranks, read once; None when missing, unreadable or not one row per ranked
        pair (no interval; the last two are `problems`)."""
        if run.path not in self._ranks:
            rows = None
            try:
                rows = read_retrieval_ranks(run.path)
            except UserError:
                self._problem(run, f"{RETRIEVAL_FILE} is not a ranks file (truncated?)")
            n = (run.metrics.get("retrieval") or {}).get("n_pairs")
            if rows is not None and isinstance(n, (int, float)) and len(rows) != int(n):
                self._problem(run, f"{RETRIEVAL_FILE} has {len(rows)} rows for the {int(n)} ranked pairs of "
                                   f"{METRICS_FILE} (truncated?)")
                rows = None
            self._ranks[run.path] = rows
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


def group_cell(group: Group, metric: str, subset: str, cache: Stats | None, resamples: int, seed: int) -> Cell:
    """The cell of `metric` on `subset`: mean over seeds, std, bootstrap interval; flagged, without a value, when the
    subset is too small for the metric (`idcbench.tables.model.metric_cell`)."""
    vals = [r.value(metric, subset) for r in group.runs]
    vals = [v for v in vals if v is not None]
    if not vals or len(vals) != len(group.runs):
        return Cell(None, seeds=len(group.runs))
    flagged = [metric_cell(metric, v, n=r.n(subset), seeds=len(group.runs)) for v, r in zip(vals, group.runs)]
    if any(c.flag for c in flagged):
        return next(c for c in flagged if c.flag)
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


def paired_p_value(model: Group, baseline: Group, *, subset: str = "total", metric: str = PRIMARY,
                   resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                   cache: Stats | None = None) -> float | None:
    """Two-sided paired bootstrap p-value of `model` vs `baseline` on `metric` (seed means when several seeds).

    Both must cover the same example ids (else `UserError`); None when per-example data are missing.
    """
    if resamples <= 0:
        return None
    cache = cache or Stats()
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
