"""Predictions + references + subsets -> corpus scores per subset and per-sample scores, as pycocoevalcap gives them.

One evaluation builds one `idcbench.metrics.Corpus`: every caption is tokenized once (one JVM), each metric starts
its slow work first (METEOR's JVM loads while the rest is computed) and scores every named subset as its own corpus:
the same digits as running pycocoevalcap once per subset. Which metrics exist, and how each is computed and
resampled, is the metrics' own business (`idcbench.metrics`); this module only runs them and keeps their results.

>>> report = score({"1": "a red cube moved"}, {"1": ["the red cube moved"]}, metrics=["BLEU-1"])  # doctest: +SKIP
>>> round(report.corpus["total"]["BLEU-1"], 6)  # doctest: +SKIP
0.75

`save_report` writes ``metrics.json`` (x100) and ``per_sample.jsonl`` (everything a resample needs) into a run
directory (`idcbench.rundir`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from idcbench.errors import UserError
from idcbench.metrics import DEFAULT_METRICS, resolve, resolve_metrics  # noqa: F401  (re-exported: the CLI's names)
from idcbench.metrics.base import Corpus, MetricUnavailable, Progress, Scores, Tokenizer, ptb_tokenize
from idcbench.rundir import write_scores



@dataclass
class ScoreReport:
    """Scores of one evaluation. Values are on pycocoevalcap's 0-1 scale (CIDEr-D as is).

    corpus: subset -> metric -> value (None when the subset is empty or the metric unavailable).
    per_sample: id -> metric -> value within the ``total`` corpus.
    samples: id -> {"hyp", "refs", ...}: the tokens and what each metric keeps to rescore (``bleu``, ``meteor``).
    """

    corpus: dict[str, dict[str, float | None]]
    per_sample: dict[str, dict[str, float]]
    samples: dict[str, dict[str, Any]]
    unavailable: dict[str, str]
    info: dict[str, dict[str, Any]]
    coverage: dict[str, Any]
    metrics: list[str]
    subsets: dict[str, list[str]]
    predictions: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# scoring
def _check_inputs(predictions, references, subsets, allow_partial):
    ids = list(references)
    if not ids:
        raise UserError("no references to score against")
    for i in ids:
        refs = references[i]
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise UserError(f"references of id {i!r} must be a list of strings")
        if len(refs) == 0:
            raise UserError(f"id {i!r} has no reference caption; every scored id needs at least one")
        if not all(isinstance(r, str) for r in refs):
            raise UserError(f"references of id {i!r} must all be strings")
    for i, cap in predictions.items():
        if not isinstance(cap, str):
            raise UserError(f"prediction for id {i!r} is not a string ({type(cap).__name__})")
    unknown = [p for p in predictions if p not in references]
    missing = [i for i in ids if i not in predictions]
    if unknown:
        raise UserError(f"{len(unknown)} predicted ids are not in the references: given "
                        f"{unknown[0]!r}, expected ids like {(missing or ids)[0]!r}; check the dataset, split or id "
                        "format")
    if missing and not allow_partial:
        given = f"given ids look like {next(iter(predictions))!r}" if predictions else "no prediction given"
        raise UserError(f"{len(missing)} of {len(ids)} reference ids have no prediction (first: "
                        f"{', '.join(map(repr, missing[:5]))}); {given}; pass --allow-partial to score only the "
                        "covered ids")
    covered = [i for i in ids if i in predictions]
    if not covered:
        raise UserError("no reference id has a prediction")
    subsets = dict(subsets) if subsets else {}
    if "total" not in subsets:
        subsets = {"total": ids, **subsets}
    position = {i: k for k, i in enumerate(covered)}
    idx: dict[str, list[int]] = {}
    for name, members in subsets.items():
        if len(set(members)) != len(members):
            raise UserError(f"subset {name!r} lists an id more than once")
        bad = [m for m in members if m not in references]
        if bad:
            raise UserError(f"subset {name!r} names {len(bad)} ids that are not in the references (first: {bad[0]!r})")
        idx[name] = [position[m] for m in members if m in position]
    coverage = {"references": len(ids), "predicted": len(covered), "missing": len(missing),
                "fraction": len(covered) / len(ids), "missing_ids": missing[:20]}
    return covered, idx, coverage


def score(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    subsets: Mapping[str, Sequence[str]] | None = None,
    metrics: Sequence[str] | None = None,
    *,
    allow_partial: bool = False,
    progress: Progress | None = None,
    tags: Mapping[str, Mapping[str, str]] | None = None,
    tokenize: Tokenizer | None = None,
) -> ScoreReport:
    """Score `predictions` (id -> caption) against `references` (id -> captions), per subset (name -> ids; a
    ``total`` subset of all ids is added when absent), with the metrics named in `metrics` (default set: None), on
    the tokens of `tokenize` (default: pycocoevalcap's PTB tokenizer). See the module docstring."""
    chosen = resolve(metrics)
    covered, idx, coverage = _check_inputs(predictions, references, subsets, allow_partial)
    corpus = Corpus([predictions[i] for i in covered], [list(references[i]) for i in covered], idx, ids=covered,
                    tokenize=tokenize or ptb_tokenize, progress=progress)
    results: dict[str, Scores] = {}
    unavailable: dict[str, str] = {}
    try:
        for m in chosen:
            m.start(corpus)
        # stable: table order, slow collectors after the others, metrics computed from others last
        for m in sorted(chosen, key=lambda m: 2 if m.requires else int(m.collect_last)):
            try:
                results[m.name] = m.score(corpus, results)
            except MetricUnavailable as e:
                unavailable[m.name] = str(e)
    finally:
        corpus.close()
    names = [m.name for m in chosen]
    corpus_values = {s: {m: (results[m].corpus.get(s) if m in results else None) for m in names} for s in idx}
    per_sample: dict[str, dict[str, float]] = {i: {} for i in covered}
    for m in names:
        values = results[m].per_sample if m in results else None
        if values is not None:
            for k, i in enumerate(covered):
                per_sample[i][m] = float(values[k])
    samples: dict[str, dict[str, Any]] = {i: {} for i in covered}
    if "tokens" in corpus.__dict__:  # some metric scored tokens: keep them, they rescore any resample
        hyps, refs = corpus.tokens
        for k, i in enumerate(covered):
            samples[i].update(hyp=hyps[k], refs=refs[k])
    for m in names:
        for key, values in (results[m].stats if m in results else {}).items():
            for k, i in enumerate(covered):
                samples[i].setdefault(key, values[k])
    versions = _versions()
    info = {m: {**results[m].info, "version": results[m].info.get("version", versions)} for m in names
            if m in results and results[m].info}
    return ScoreReport(
        corpus=corpus_values, per_sample=per_sample, samples=samples, unavailable=unavailable, info=info,
        coverage=coverage, metrics=names, subsets={s: [covered[j] for j in members] for s, members in idx.items()},
        predictions={i: predictions[i] for i in covered},
        tags={i: dict(tags.get(i, {})) for i in covered} if tags else {},
    )


def _versions() -> dict[str, str]:
    from importlib import metadata

    import idcbench

    try:
        coco = metadata.version("pycocoevalcap")
    except metadata.PackageNotFoundError:
        coco = "unknown"
    return {"idcbench": idcbench.__version__, "pycocoevalcap": coco}


# --------------------------------------------------------------------------------------------------------------
# run directory files
def metrics_json(report: ScoreReport) -> dict[str, Any]:
    """The content of ``metrics.json``: values x100, null when not computed."""
    return {
        "scale": 100,
        "subsets": {
            s: {"n": len(report.subsets[s]),
                "metrics": {m: (None if report.corpus[s].get(m) is None else report.corpus[s][m] * 100)
                            for m in report.metrics}}
            for s in report.corpus
        },
        "unavailable": dict(report.unavailable),
        "metric_info": report.info,
        "coverage": report.coverage,
    }


def sample_stats_keys() -> list[str]:
    """The keys of every row's ``stats``: the tokens, then what each registered metric keeps (`Metric.keeps`), in
    metric order; a key whose metric was not computed is null."""
    from idcbench.registry import METRICS

    metrics = sorted((METRICS.get(n) for n in METRICS.names()), key=lambda m: m.order)
    return list(dict.fromkeys(["hyp", "refs", *(k for m in metrics for k in m.keeps)]))


def sample_rows(report: ScoreReport) -> list[dict[str, Any]]:
    """The rows of ``per_sample.jsonl``, in reference order."""
    member_of: dict[str, list[str]] = {}
    for name, members in report.subsets.items():
        if name != "total":
            for i in members:
                member_of.setdefault(i, []).append(name)
    keys = sample_stats_keys()
    rows = []
    for i in report.per_sample:
        st = report.samples.get(i, {})
        rows.append({
            "id": i,
            "prediction": report.predictions.get(i, ""),
            "tags": report.tags.get(i, {}),
            "subsets": member_of.get(i, []),  # every subset but total (the bootstrap of hard-iou needs them)
            "scores": report.per_sample[i],
            "stats": {k: st.get(k) for k in keys},
        })
    return rows


def save_report(report: ScoreReport, directory: str | Path, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``metrics.json`` (`metrics_json` plus the `extra` keys) and ``per_sample.jsonl`` into `directory`, each
    atomically; return what ``metrics.json`` holds."""
    metrics = {**metrics_json(report), **(extra or {})}
    write_scores(directory, metrics, sample_rows(report))
    return metrics


