"""Scoring a run: merge its predictions, score every metric on every subset (+ retrieval R@k for models that embed
pairs and texts), write ``metrics.json``, ``per_sample.jsonl``, ``retrieval.jsonl`` and ``DONE``; `score_run` does it
for ``idcbench score RUN_DIR`` once every shard is there.

Pairs the model has no caption for (`Caption.failed`) are scored as their empty caption and listed in the
``run`` section of ``metrics.json`` (``failed``: count, ids, reasons); such a run gets no ``DONE``, so the same
command asks those pairs again (and only those) and scores the run again."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from idcbench.captioner import Captioner, RetrievalModel
from idcbench.data import Dataset, Example
from idcbench.distributed import shard
from idcbench import factory, rundir
from idcbench.errors import UserError
from idcbench.protocol import COCO, Protocol
from idcbench.rundir import MODEL_DIR
from idcbench.run.lock import hold
from idcbench.run.merge import Held, held_scores, merge_metrics, merge_rows
from idcbench.run.model import load_saved
from idcbench.run.reporter import Reporter
from idcbench.run.request import Prepared, RunResult, reopen


def split_subsets(dataset: Dataset, split: str, examples: Sequence[Example],
                  protocol: Protocol = COCO) -> dict[str, list[str]]:
    """The protocol's subsets of the split restricted to the evaluated examples (``--limit``); empty ones dropped."""
    kept = {e.id for e in examples}
    subsets = {name: [i for i in ids if i in kept] for name, ids in protocol.subsets(dataset, split).items()}
    subsets = {name: ids for name, ids in subsets.items() if ids}
    subsets.setdefault("total", [e.id for e in examples])
    return subsets


def retrieval_examples(examples: Sequence[Example]) -> list[Example]:
    """CLIP4IDC scores retrieval on semantic-change pairs only (CLEVR-style ``kind`` tag); untagged data: all."""
    return [e for e in examples if e.tags.get("kind") in (None, "semantic") and any(r.strip() for r in e.references)]


def score_retrieval(model: Any, examples: Sequence[Example], *, batch_size: int,
                    reporter: Reporter) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Text->pair and pair->text R@k of a `RetrievalModel`, the split's reference captions as the texts
    (`idcbench.metrics.retrieval`, CLIP4Clip multi-sentence protocol; ties count against the query), and the
    per-pair ranks behind them."""
    import torch

    from idcbench.metrics.retrieval import per_example_ranks, similarity

    chosen = retrieval_examples(examples)
    if len(chosen) < 2:
        return None
    reporter.begin("retrieval", 1)
    with torch.no_grad():
        sim, owner, kept = similarity(model, chosen, batch_size=batch_size)
    reporter.advance("retrieval", 1)
    reporter.end("retrieval")
    metrics, rows = per_example_ranks(sim, owner, [e.id for e in kept])
    result: dict[str, Any] = dict(metrics)
    result["subset"] = "semantic" if any(e.tags.get("kind") for e in chosen) else "total"
    return result, rows


def _score(predictions: dict[str, str], references: dict[str, list[str]], subsets: dict[str, list[str]],
           metrics: list[str] | None, tags: dict[str, dict[str, str]], reporter: Reporter, tokenize=None) -> Any:
    from idcbench import scoring

    def progress(stage: str, done: int, total: int) -> None:
        reporter.update("score", done, total, stage)

    reporter.begin("score", 1)
    report = scoring.score(predictions, references, subsets, metrics, progress=progress, tags=tags, tokenize=tokenize)
    reporter.end("score")
    return report


def finalize(p: Prepared, model: Captioner | None, reporter: Reporter, *, num_shards: int | None = None) -> dict:
    """Merge predictions, score the run's metrics on every subset (+ retrieval), write metrics.json and DONE.

    Metrics the directory already holds for these predictions are kept, not recomputed: scoring again with other
    metrics adds them."""
    from idcbench import scoring

    run_dir = p.run_dir
    preds = rundir.merge_predictions(run_dir, [e.id for e in p.examples])
    held = held_scores(run_dir, p.spec.hash, preds)
    todo = [m for m in p.metrics if held is None or m not in held.names]
    extra: dict[str, Any] = {"run": {
        "model": p.spec.model, "dataset": p.spec.dataset, "split": p.spec.split, "seed": p.spec.seed,
        "spec_hash": p.spec.hash, "world_size": p.info.world_size, "num_shards": num_shards, "n": len(p.examples),
        "limit": p.spec.limit,
    }}
    failed = rundir.failed_predictions(run_dir)
    if failed:
        extra["run"]["failed"] = {"n": len(failed), "ids": list(failed),
                                  "reasons": dict(Counter(failed.values()).most_common())}
    if held is not None and not todo:
        metrics, rows = {**held.metrics, **extra}, held.rows
    else:
        references = {e.id: list(e.references) for e in p.examples}
        tags = {e.id: dict(e.tags) for e in p.examples}
        subsets = split_subsets(p.dataset, p.spec.split, p.examples, p.protocol)
        report = _score(preds, references, subsets, todo, tags, reporter, p.protocol.tokenizer(p.dataset))
        metrics, rows = {**scoring.metrics_json(report), **extra}, scoring.sample_rows(report)
        if held is not None:
            metrics, rows = merge_metrics(held.metrics, metrics), merge_rows(held.rows, rows)
    if held is None or not held.has_retrieval:
        retrieval = None
        if model is not None and isinstance(model, RetrievalModel):
            retrieval = score_retrieval(model, p.examples, batch_size=p.request.batch_size, reporter=reporter)
        ranks = None
        if retrieval is not None:
            metrics["retrieval"], ranks = retrieval
        rundir.write_retrieval(run_dir, ranks)  # none: a rescore without the model leaves no stale ranks
    rundir.write_scores(run_dir, metrics, rows)
    rundir.write_curves(run_dir, curves_source(p))
    computed = sorted(Held(metrics, rows).names)
    if failed:  # not done: the same command asks the failed pairs again
        rundir.clear_done(run_dir)
        return metrics
    rundir.write_done(run_dir, p.spec.hash, computed)
    return metrics


def curves_source(p: Prepared) -> Path | None:
    """Where the validation curves of the run's model are: its own training folder, or the provenance shipped with
    its ``--init`` checkpoint."""
    if p.spec.train:
        return p.run_dir / rundir.TRAIN_DIR
    if p.request.init is not None and Path(p.request.init).is_dir():
        return Path(p.request.init) / "provenance"
    return None


def missing_shards(run_dir: Path, examples: Sequence[Example]) -> list[str]:
    """Descriptions of shards that are absent or incomplete (empty when every id has a prediction)."""
    ids = [e.id for e in examples]
    have = rundir.collect_records(run_dir, ids)  # a failed pair is finished for its shard (a rerun of the run asks it again)
    if len(have) == len(ids):
        return []
    files = run_dir.glob("predictions.shard-*-of-*.jsonl")
    counts = sorted({int(f.name.rsplit("-of-", 1)[1].split(".")[0]) for f in files})
    if not counts:
        return [f"no shard files in {run_dir} and {len(ids) - len(have)} of {len(ids)} predictions missing"]
    problems = []
    for n in counts:
        for i in range(n):
            part = shard(examples, i, n)
            got = sum(e.id in have for e in part)
            if got < len(part):
                f = rundir.shard_file(i, n)
                problems.append(f"shard {i} of {n} ({f}: missing)" if not (run_dir / f).exists()
                                else f"shard {i} of {n} ({f}: {got}/{len(part)} predictions, incomplete)")
    return problems


def score_run(run_dir: str | Path, *, data_root: str | Path | None = None, metrics: list[str] | None = None,
              device: str = "auto", batch_size: int | None = None, reporter: Reporter | None = None) -> RunResult:
    """`idcbench score RUN_DIR`: merge the shard files of a run directory and score it (once every shard is there).
    `metrics` defaults to the ones the run was started with."""
    reporter = reporter or Reporter()
    p = reopen(Path(run_dir), data_root=data_root, metrics=metrics, device=device, batch_size=batch_size,
               reporter=reporter)
    with hold(p.run_dir, reporter=reporter):  # waits for running shards (they share the lock)
        problems = missing_shards(p.run_dir, p.examples)
        if problems:
            raise UserError(f"{p.run_dir}: cannot score yet: {'; '.join(problems)}; run the missing shards with "
                            "`idcbench run ... --shard I --num-shards N`")
        model = None
        if factory.is_saved(p.run_dir / MODEL_DIR) and hasattr(p.model_spec.family, "embed_pairs"):
            model = load_saved(p.run_dir / MODEL_DIR, p, what=str(p.run_dir / MODEL_DIR))
        metrics_out = finalize(p, model, reporter, num_shards=rundir.read_spec(p.run_dir).get("num_shards"))
    return RunResult(p.run_dir, p.spec, "done", metrics_out)
