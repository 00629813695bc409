"""The model of a run: trained (resumable, then saved), loaded from ``--init``, or built; always read back from the
run's ``model/`` folder so that every process and every resumed run captions with the same weights."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from idcbench import factory, rundir
from idcbench.captioner import Captioner, FitContext
from idcbench.distributed import barrier
from idcbench.errors import UserError
from idcbench.rng import seed_everything
from idcbench.rundir import MODEL_DIR, TRAIN_DIR
from idcbench.run.reporter import Reporter
from idcbench.run.request import Prepared, fit_examples



def _curve_cost(workdir: Path) -> tuple[float | None, int | None]:
    """Training seconds and steps of a fit that logs its validation curves: the last row of each stage, summed; the
    curves count across resumed processes, so a fit killed and resumed is costed whole. (None, None) without curves."""
    from idcbench.train_log import read_curves

    last = [rows[-1] for rows in read_curves(workdir).values() if rows]
    seconds = [r["seconds"] for r in last if isinstance(r.get("seconds"), (int, float))]
    steps = [r["step"] for r in last if isinstance(r.get("step"), (int, float))]
    return (sum(seconds) if seconds else None), (int(sum(steps)) if steps else None)


def _config(p: Prepared) -> dict[str, Any]:
    """The run's whole config (hashed keys and runtime keys)."""
    return {**p.spec.config, **p.runtime}


def load_saved(directory: Path, p: Prepared, *, what: str) -> Captioner:
    """A saved model folder as the run's model reads it (`idcbench.factory.load`), on the run's device."""
    return factory.load(directory, p.request.model, overrides=p.request.config, config=_config(p),
                        what=what).to(p.device)


def load_init(p: Prepared) -> Captioner:
    """--init: a saved model folder (or a bare adapter) is loaded; a file goes to the model as its ``init`` config
    entry (e.g. CLIP4IDC's official ``pytorch_model.bin.*``)."""
    return factory.from_init(p.request.init, p.request.model, overrides=p.request.config,
                             config=_config(p)).to(p.device)


def _save_model(model: Captioner, p: Prepared) -> None:
    factory.save(model, p.run_dir / MODEL_DIR, name=p.request.model, spec_hash=p.spec.hash)


def obtain_model(p: Prepared, reporter: Reporter, *, may_train: bool = True,
                 init_model: Captioner | None = None) -> Captioner:
    """The model of the run: loaded from model/ when saved; else trained (from --init when given, then saved), loaded
    from --init (`init_model` when already loaded), or built."""
    target = p.run_dir / MODEL_DIR
    if not factory.is_saved(target):
        if p.info.is_main and target.exists():
            shutil.rmtree(target)  # left by something else than _save_model: incomplete by definition
        if p.spec.train:
            if not may_train:
                raise UserError(f"{p.run_dir}: the model is not trained yet; run shard 0 first (it trains and saves "
                                f"{MODEL_DIR}/), or pass --init CKPT")
            seed_everything(p.spec.seed)  # before building: random initialisation is part of the result
            start = (init_model or load_init(p)) if p.request.init is not None else p.model_spec.family(_config(p))
            model = start.to(p.device)
            ctx = FitContext(workdir=p.run_dir / TRAIN_DIR, seed=p.spec.seed, device=p.device,
                             on_progress=reporter.train if p.info.is_main else None,
                             rank=p.info.rank, world_size=p.info.world_size)
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            train, val = fit_examples(p.dataset, "train"), fit_examples(p.dataset, "val")
            reporter.message(f"training {p.request.model} on {p.request.dataset} train ({len(train)} examples, "
                             f"val {len(val)}); state in {ctx.workdir}")
            started = time.perf_counter()
            model.fit(train, val, ctx)
            if p.info.is_main:
                seconds, steps = _curve_cost(ctx.workdir)
                if seconds is None:  # a fit without curves: this process's time
                    seconds = time.perf_counter() - started
                rundir.add_cost(p.run_dir, train_seconds=seconds, device=p.device, train_steps=steps)
                _save_model(model, p)
            del model  # captioning uses the saved copy; do not hold two in memory
        elif p.info.is_main:
            seed_everything(p.spec.seed)
            if p.request.init is not None:
                model = init_model or load_init(p)
            else:
                model = p.model_spec.family(_config(p))
            _save_model(model, p)
        barrier()
    # Every process and every resumed run captions with the weights read back from model/: identical captions.
    return load_saved(target, p, what=str(target))
