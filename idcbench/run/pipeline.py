"""``idcbench run``: request -> prepare (all validation) -> model (train, load or --init) -> caption -> score.

`run(RunRequest(...))` is what `idcbench run` calls; `idcbench.run.score.score_run(run_dir)` is what `idcbench score`
calls. The run directory (``runs/<dataset>/<model>/<spec hash>/``) holds:

- ``run_spec.json``: the hashed spec plus what is recorded but not hashed (world size, data root, batch size);
- ``env.json``: idcbench version and git commit, torch / open_clip / pycocoevalcap / Java versions, device, CPU;
- ``train/``: the model's resumable training state; ``model/``: the model to caption with (saved by `Captioner.save`);
- ``predictions.jsonl``: ``{"id", "caption"}`` per line, appended and fsync'ed per batch, rewritten in dataset order
  at the end; under torchrun each rank appends to ``predictions.rank<k>.jsonl``, with ``--shard I --num-shards N`` to
  ``predictions.shard-I-of-N.jsonl``; the merge checks that every id is present exactly once;
- ``metrics.json`` and ``per_sample.jsonl`` (from `idcbench.scoring.save_report`, plus ``run`` and ``retrieval``);
- ``retrieval.jsonl`` (models that embed pairs and texts): per pair, the text->pair ranks of its captions and its
  pair->text rank, which the bootstrap intervals of R@K resample;
- ``DONE``: written last. A run with DONE is reused; ``--force`` redoes it.

Killed at any point, the same command continues: training resumes from ``train/`` (the model's job), captioning skips
the ids already in a predictions file (a torn last line is dropped), scoring is recomputed. Whole files are written
atomically, so nothing saved is ever half-written.
"""

from __future__ import annotations

import shutil
import time
from contextlib import nullcontext
from pathlib import Path

from idcbench.captioner import Captioner, RunContext, TrainData
from idcbench.distributed import (
    DistInfo, barrier, destroy_process_group, dist_info, init_process_group, shard,
)
from idcbench.errors import UserError
from idcbench import factory, rundir
from idcbench.rundir import LOCK_FILE, MODEL_DIR, PREDICTIONS, SCORE_FILES, collect_predictions, rank_file, shard_file
from idcbench.run.caption import caption_examples
from idcbench.run.lock import hold
from idcbench.run.merge import held_scores
from idcbench.run.model import load_init, obtain_model
from idcbench.run.record import write_run_files
from idcbench.run.reporter import Reporter
from idcbench.run.request import Prepared, RunRequest, RunResult, prepare, resolve_device
from idcbench.run.score import finalize


def run(req: RunRequest, reporter: Reporter | None = None) -> RunResult:
    """Execute (or reuse) a run. Under torchrun every rank calls this; rank 0 merges and scores."""
    reporter = reporter or Reporter()
    info = dist_info()
    sharded = req.shard is not None or req.num_shards is not None
    if sharded:
        if req.shard is None or req.num_shards is None:
            raise UserError("--shard and --num-shards go together (e.g. --shard 0 --num-shards 4)")
        if info.distributed:
            raise UserError("--shard is for separate jobs, one process each; do not combine it with torchrun")
        shard(range(1), req.shard, req.num_shards)  # validates the pair
    device = resolve_device(req.device, info)
    started = init_process_group(info, device)
    try:
        return _run(req, reporter, info, device, sharded)
    finally:
        if started:
            destroy_process_group()


def _run(req: RunRequest, reporter: Reporter, info: DistInfo, device: str, sharded: bool) -> RunResult:
    p = prepare(req, info, device)  # every check a user can fail, before any work
    run_dir = p.run_dir
    init_model = None
    if req.init is not None and info.is_main and (req.force or not factory.is_saved(run_dir / MODEL_DIR)):
        init_model = load_init(p)  # a wrong checkpoint fails before the run directory is created
    shard_name = shard_file(req.shard, req.num_shards) if sharded else None
    lock = hold(run_dir, shard=shard_name, reporter=reporter) if info.is_main else nullcontext()
    with lock:  # under torchrun rank 0 holds the directory for all ranks
        barrier()
        return _run_held(p, reporter, sharded, init_model)


def _clear(run_dir: Path) -> None:
    """--force: empty the run directory (the lock files stay: this process holds them)."""
    for path in run_dir.iterdir():
        if path.name.startswith(LOCK_FILE):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _run_held(p: Prepared, reporter: Reporter, sharded: bool, init_model: Captioner | None) -> RunResult:
    req, info, run_dir = p.request, p.info, p.run_dir
    if req.force:
        if sharded:
            for name in (*SCORE_FILES, PREDICTIONS, shard_file(req.shard, req.num_shards)):
                (run_dir / name).unlink(missing_ok=True)
        elif info.is_main:
            _clear(run_dir)
        barrier()
    done = rundir.read_done(run_dir)
    if done is not None and done.get("spec_hash") == p.spec.hash:
        held = held_scores(run_dir, p.spec.hash)
        if held is not None and (sharded or set(p.metrics) <= held.names):
            return RunResult(run_dir, p.spec, "reused", held.metrics)
    if info.is_main:
        write_run_files(p, num_shards=req.num_shards)
    barrier()
    reporter.message(f"run directory {run_dir}")
    model = obtain_model(p, reporter, may_train=not sharded or req.shard == 0, init_model=init_model)
    part = f"shard-{req.shard}-of-{req.num_shards}" if sharded else f"rank{info.rank}" if info.distributed else ""
    model.bind_run(RunContext(run_dir, TrainData.of(p.dataset), part))  # e.g. a server family's write-ahead log

    ids = [e.id for e in p.examples]
    if sharded:
        mine = shard(p.examples, req.shard, req.num_shards)
        out_file, label = run_dir / shard_file(req.shard, req.num_shards), f"caption shard {req.shard}/{req.num_shards}"
    elif info.distributed:  # strided shard per rank; the bar shows rank 0's share
        mine = shard(p.examples, info.rank, info.world_size)
        out_file, label = run_dir / rank_file(info.rank), f"caption (rank 0 of {info.world_size})"
    else:
        mine, out_file, label = p.examples, run_dir / PREDICTIONS, "caption"
    done_preds = collect_predictions(run_dir, ids)
    barrier()  # nobody appends before every rank has read the saved predictions
    started = time.perf_counter()
    n = caption_examples(model, mine, out_file, batch_size=req.batch_size, done=done_preds, reporter=reporter,
                         label=label)
    if info.is_main and n:
        rundir.add_cost(run_dir, caption_seconds=time.perf_counter() - started, device=p.device)
    if sharded:
        return RunResult(run_dir, p.spec, "shard")
    barrier()
    metrics = None
    if info.is_main:
        started = time.perf_counter()
        metrics = finalize(p, model, reporter)
        rundir.add_cost(run_dir, score_seconds=time.perf_counter() - started)
    barrier()
    return RunResult(run_dir, p.spec, "done", metrics)
