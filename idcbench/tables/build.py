"""Runs -> tables: `compare` (one table per dataset split, intervals and paired p-values) and `dataset_tables` /
`leaderboard_tables` (the leaderboard's main, per-change-type and semantic/distractor tables, published rows beside
measured ones). Rows are sorted by CIDEr-D, then label: the output is a pure function of the runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from idcbench import bootstrap as bs
from idcbench.errors import UserError
from idcbench.protocol import Section, protocol_of
from idcbench.rundir import read_curves
from idcbench.tables.model import (
    COST_COLUMNS, PRIMARY, RETRIEVAL_COLUMNS, Cell, Row, Table, footnotes, is_column, metric_order,
)
from idcbench.tables.runs import Group, RunInfo, discover_runs, group_runs, metric_columns
from idcbench.tables.stats import Stats, group_cell, paired_p_value

Progress = Callable[[str, int, int], None]  # (description, done, total)


def _report(group: Group, reports: Mapping[str, str] | None) -> str:
    """The report page of the group's first seed that has one (`reports`: spec hash -> page), else ``""``."""
    return next((reports[r.spec_hash] for r in group.runs if reports and r.spec_hash in reports), "")


def _measured_row(group: Group, columns: Sequence[str], subset: str, cache: Stats | None, resamples: int,
                  seed: int, reports: Mapping[str, str] | None = None) -> Row:
    cells = {m: group_cell(group, m, subset, cache, resamples, seed) for m in columns}
    ns = {r.n(subset) for r in group.runs}
    return Row(label=group.label, kind="measured", cells=cells, model=group.model, seeds=group.seeds,
               n=ns.pop() if len(ns) == 1 else None, runs=[str(r.path) for r in group.runs],
               report=_report(group, reports), settings=dict(group.settings))


def group_cost(group: Group) -> dict[str, float | str | None]:
    """The cost columns of a configuration: the mean over its seeds of each number their ``cost.json`` records (the
    seeds that record it), the devices they ran on; None where no seed records it."""
    out: dict[str, float | str | None] = {}
    costs = [r.cost for r in group.runs]
    for key in COST_COLUMNS:
        values = [c[key] for c in costs if c.get(key) is not None]
        if key == "device":
            out[key] = ", ".join(sorted({str(v) for v in values})) or None
        else:
            numbers = [float(v) for v in values if isinstance(v, (int, float))]
            out[key] = sum(numbers) / len(numbers) if numbers else None
    return out


def _with_cost(table: Table, groups: Sequence[Group]) -> Table:
    """`table` with the cost columns, each measured row's from its configuration's runs."""
    by_label = {g.label: g for g in groups}
    table.cost_columns = list(COST_COLUMNS)
    for row in table.measured:
        if row.label in by_label:
            row.cost = group_cost(by_label[row.label])
    return table


def interval_warnings(groups: Sequence[Group], cache: Stats, *, what: str = "intervals") -> list[str]:
    """One line per run whose per-example files gave no `what` (a missing, unreadable or truncated per_sample.jsonl
    or retrieval.jsonl), as far as `cache` has read them."""
    out = []
    for g in groups:
        for r in g.runs:
            out += [f"no {what} for {g.label}: seed {r.seed}'s {why}; `idcbench score RUN_DIR` rewrites it"
                    for why in cache.problems(r)]
    return out


def failure_warnings(groups: Sequence[Group]) -> list[str]:
    """One line per run with pairs its model has no caption for (``metrics.json``'s ``run.failed``: e.g. a server
    whose answer stayed empty); they count as empty captions in its scores."""
    out = []
    for g in groups:
        for r in g.runs:
            failed = (r.metrics.get("run") or {}).get("failed") or {}
            if failed.get("n"):
                ids = ", ".join(map(str, failed.get("ids", [])[:5])) + (", …" if failed["n"] > 5 else "")
                why = next(iter(failed.get("reasons") or {}), "no caption")
                out.append(f"{g.label}: seed {r.seed} has no caption for {failed['n']} of {r.n()} pairs ({ids}: "
                           f"{why}); they are scored as empty captions; rerun its `idcbench run` command to ask them "
                           "again")
    return out


def _sort_rows(rows: list[Row], metric: str) -> list[Row]:
    def key(r: Row) -> tuple:
        c = r.cells.get(metric)
        v = c.value if c is not None and c.value is not None else -math.inf
        return (-v, r.label)

    return sorted(rows, key=key)


def _find_baseline(groups: Sequence[Group], baseline: str) -> Group | None:
    hits = [g for g in groups if g.label == baseline] or [g for g in groups if g.model == baseline]
    if len(hits) > 1:
        raise UserError(f"--baseline {baseline!r} matches several configurations: "
                        f"{', '.join(g.label for g in hits)}; pass one of these labels")
    return hits[0] if hits else None


def compare(runs: Sequence[RunInfo], *, subset: str = "total", baseline: str | None = None,
            resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED, columns: Sequence[str] | None = None,
            progress: Progress | None = None, cost: bool = False) -> list[Table]:
    """One table per (dataset, split): a row per configuration (mean ± std over seeds), each metric with its
    95 % bootstrap interval, and the paired bootstrap p-value against `baseline` on CIDEr-D; with `cost`, what the
    runs cost (`COST_COLUMNS`)."""
    if not runs:
        raise UserError("no finished runs to compare (a run directory has metrics.json; `idcbench run` makes one)")
    groups = group_runs(runs)
    cache = Stats()
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
            if base is not None and g is not base and PRIMARY in cols and not row.cells[PRIMARY].flag:
                row.p_value = paired_p_value(g, base, subset=subset, resamples=resamples, seed=seed, cache=cache)
            rows.append(row)
            done += 1
        table = Table(title=f"{dataset} ({split}, {subset})", dataset=dataset, split=split, subset=subset,
                      columns=cols, rows=_sort_rows(rows, PRIMARY), baseline=base.label if base else None)
        if cost:
            _with_cost(table, gs)
        table.notes += [_ci_note(resamples, seed), *footnotes(table)]
        table.warnings = failure_warnings(gs) + interval_warnings(gs, cache, what="intervals or p-values" if base
                                                                   else "intervals")
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


def dataset_tables(dataset: str, split: str, groups: Sequence[Group], *, resamples: int = bs.DEFAULT_RESAMPLES,
                   seed: int = bs.DEFAULT_SEED, cache: Stats | None = None, published_rows: bool = True,
                   progress: Progress | None = None, reports: Mapping[str, str] | None = None,
                   cost: bool = False) -> list[Table]:
    """The leaderboard tables of one dataset split (and protocol): main metrics on ``total`` (measured + published
    rows), then the tables of the protocol's sections (CLEVR-Change: CIDEr-D per change type, semantic change vs
    distractor). `reports` (spec hash -> report page) links measured rows to a report of one of their runs; `cost`
    adds what the runs cost to the main table."""
    from idcbench.published import published

    cache = cache or Stats()
    runs = [r for g in groups for r in g.runs]
    protocol = groups[0].protocol if groups else protocol_of(dataset)
    standard = protocol.name == protocol_of(dataset).name  # published numbers follow the dataset's standard protocol
    pub = published(dataset) if published_rows and split == "test" and standard else []
    cols = metric_columns(runs, "total")
    published_cols = {m for p in pub for m, v in p.subsets.get("total", {}).items() if v is not None and is_column(m)}
    if published_cols - set(cols):  # published columns shown even if no measured run has them
        metrics = sorted(set(c for c in cols if c not in RETRIEVAL_COLUMNS) | published_cols, key=metric_order)
        cols = metrics + [c for c in cols if c in RETRIEVAL_COLUMNS]
    tables = []
    rows = [_measured_row(g, cols, "total", cache, resamples, seed, reports) for g in groups]
    if progress:
        progress(f"{dataset}: main table", 0, 3)
    main = Table(title=f"{dataset} ({split})", dataset=dataset, split=split, subset="total", columns=cols,
                 rows=_sort_rows(rows, protocol.primary) + [_published_row(p, cols, "total") for p in pub], key="main")
    main.notes.append(_ci_note(resamples, seed))
    main.curves = {g.label: c for g in groups if (c := read_curves(g.runs[0].path))}
    if cost:
        _with_cost(main, groups)
    if pub:
        main.notes.append("Rows marked 'published' are reported numbers (their sources below), not measured here; "
                          "they differ in backbone, training data and sometimes scorer.")
    tables.append(main)

    subsets = sorted({s for r in runs for s in r.metrics.get("subsets", {})})
    ranked = [next(g for g in groups if g.label == r.label) for r in main.measured]
    sections = protocol.sections
    named = {s for sec in sections for s in (*sec.subsets, *sec.extra)}
    for k, section in enumerate(sections):
        present = [s for s in section.subsets if s in subsets]
        if not present:
            continue
        if progress:
            progress(f"{dataset}: {section.title}", k + 1, len(sections) + 1)
        columns = present + [s for s in section.extra if s in subsets]
        columns += [s for s in subsets if section.others and s not in named and s != "total"]
        title = f"{dataset} ({split}): {section.title}"
        if section.all_metrics:
            t = _subset_rows_table(title, dataset, split, section, columns, cols, ranked, pub, cache, resamples, seed,
                                   reports)
        else:
            t = _subset_columns_table(title, dataset, split, section, columns, protocol.primary, ranked, pub, cache,
                                      resamples, seed, reports)
        t.notes.append(section.note) if section.note else None
        tables.append(t)
    for t in tables:
        t.notes += footnotes(t)
    main.warnings = failure_warnings(groups) + interval_warnings(groups, cache)
    return tables


def _subset_columns_table(title: str, dataset: str, split: str, section: Section, columns: Sequence[str],
                          metric: str, ranked: Sequence[Group], pub: Sequence[Any], cache: Stats, resamples: int,
                          seed: int, reports: Mapping[str, str] | None) -> Table:
    """One row per model, one column per subset: the primary metric of each subset (e.g. CIDEr-D per change type)."""
    rows = []
    for g in ranked:
        cells = {s: group_cell(g, metric, s, cache, resamples, seed) for s in columns}
        rows.append(Row(label=g.label, kind="measured", cells=cells, model=g.model, seeds=g.seeds,
                        runs=[str(r.path) for r in g.runs], report=_report(g, reports), settings=dict(g.settings)))
    rows += [_published_row(p, columns, None, metric=metric) for p in pub
             if any(p.value(metric, t) is not None for t in columns)]
    return Table(title=title, dataset=dataset, split=split, subset="*", columns=list(columns), rows=rows,
                 key=section.key, metric=metric, heading=section.title[:1].upper() + section.title[1:])


def _subset_rows_table(title: str, dataset: str, split: str, section: Section, subsets: Sequence[str],
                       cols: Sequence[str], ranked: Sequence[Group], pub: Sequence[Any], cache: Stats, resamples: int,
                       seed: int, reports: Mapping[str, str] | None) -> Table:
    """One row per (model, subset), the metric columns (e.g. semantic change vs distractor)."""
    kcols = [c for c in cols if c not in RETRIEVAL_COLUMNS]
    rows = []
    for g in ranked:
        for k in subsets:
            row = _measured_row(g, kcols, k, cache, resamples, seed, reports)
            row.subset = k
            rows.append(row)
    for p in pub:
        for k in subsets:
            if any(p.value(m, k) is not None for m in kcols):
                row = _published_row(p, kcols, k)
                row.subset = k
                rows.append(row)
    return Table(title=title, dataset=dataset, split=split, subset=section.key, columns=kcols, rows=rows,
                 key=section.key, heading=section.title[:1].upper() + section.title[1:])


def _published_row(p: Any, columns: Sequence[str], subset: str | None, metric: str | None = None) -> Row:
    if subset is None:  # columns are subsets of one metric
        cells = {c: Cell(p.value(metric, c)) for c in columns}
    else:
        cells = {c: Cell(p.value(c, subset)) for c in columns}
    source = p.source + (f"; {p.note}" if p.note else "")
    return Row(label=p.label, kind="published", cells=cells, model=p.method, source=source)


def leaderboard_tables(runs_dir: str | Path, *, resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                       progress: Progress | None = None,
                       reports: Mapping[str, str] | None = None,
                       cost: bool = False) -> dict[tuple[str, str], list[Table]]:
    """All leaderboard tables: (dataset, split) -> tables, in sorted order (`reports`, `cost`: see
    `dataset_tables`)."""
    groups = group_runs(discover_runs(runs_dir))
    cache = Stats()
    out: dict[tuple[str, str], list[Table]] = {}
    keys = sorted({(g.dataset, g.split) for g in groups})
    for i, (dataset, split) in enumerate(keys):
        if progress:
            progress(f"{dataset} ({split})", i, len(keys))
        gs = [g for g in groups if (g.dataset, g.split) == (dataset, split)]
        out[(dataset, split)] = dataset_tables(dataset, split, gs, resamples=resamples, seed=seed, cache=cache,
                                               reports=reports, cost=cost)
    if progress:
        progress("done", len(keys), len(keys))
    return out
