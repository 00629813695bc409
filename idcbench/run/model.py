"""The model of a run: trained (resumable, then saved), loaded from ``--init``, or built; always read back from the
run's ``model/`` folder so that every process and every resumed run captions with the same weights."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

from idcbench.captioner import Captioner, FitContext, ModelSpec
from idcbench.distributed import barrier
from idcbench.errors import UserError, read_json
from idcbench.run.reporter import Reporter
from idcbench.run.request import Prepared, fit_examples
from idcbench.spec import write_json_atomic

MODEL_DIR = "model"
TRAIN_DIR = "train"
MODEL_MARKER = "idcbench-model.json"  # written into model/ last: its presence means the saved model is complete


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (before building a model: random initialisation is part of the result)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def family_name(spec: ModelSpec) -> str:
    """The captioner class's name: checkpoints of one family load into each of its variants (shapes permitting)."""
    return spec.family.__qualname__


def _wrap_load_error(what: str, model: str, err: Exception) -> UserError:
    first = " ".join(str(err).split())[:300]
    return UserError(f"{what}: not a checkpoint of model {model!r} (or of another shape): {type(err).__name__}: {first}")


def load_saved(directory: Path, p: Prepared, *, what: str) -> Captioner:
    marker = directory / MODEL_MARKER
    if marker.exists():
        meta = read_json(marker, what="model marker")
        if meta.get("family") != family_name(p.model_spec):
            raise UserError(f"{what}: saved by model {meta.get('model')!r} ({meta.get('family')}), "
                            f"not by {p.request.model!r}; pass a checkpoint of {p.request.model}")
    try:
        model = p.model_spec.family.load(directory, **p.request.config)
    except UserError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, OSError, EOFError, json.JSONDecodeError) as e:
        raise _wrap_load_error(what, p.request.model, e) from None
    return model.to(p.device)


def _build(p: Prepared, **extra: Any) -> Captioner:
    """A fresh model from the run's resolved config (variant config deep-merged with --config)."""
    return p.model_spec.family({**p.spec.config, **p.runtime, **extra})


def load_init(p: Prepared) -> Captioner:
    """--init: a directory saved by `Captioner.save` is loaded by the family; a file goes to the model as its
    ``init`` config entry (e.g. CLIP4IDC's official ``pytorch_model.bin.*``)."""
    init = Path(p.request.init)  # type: ignore[arg-type]
    if init.is_dir():
        return load_saved(init, p, what=f"--init {init}")
    try:
        model = _build(p, init=str(init.resolve()))
    except UserError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, OSError, EOFError) as e:
        raise _wrap_load_error(f"--init {init}", p.request.model, e) from None
    return model.to(p.device)


def _save_model(model: Captioner, p: Prepared) -> None:
    """Save into a temporary folder, mark it complete, then rename it to model/ (atomic; concurrent shards agree)."""
    target = p.run_dir / MODEL_DIR
    tmp = p.run_dir / f".{MODEL_DIR}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save(tmp)
        write_json_atomic(tmp / MODEL_MARKER, {
            "model": p.request.model, "family": family_name(p.model_spec), "spec_hash": p.spec.hash,
        })
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MODEL_MARKER).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def obtain_model(p: Prepared, reporter: Reporter, *, may_train: bool = True,
                 init_model: Captioner | None = None) -> Captioner:
    """The model of the run: loaded from model/ when saved; else trained (from --init when given, then saved), loaded
    from --init (`init_model` when already loaded), or built."""
    target = p.run_dir / MODEL_DIR
    if not (target / MODEL_MARKER).exists():
        if p.info.is_main and target.exists():
            shutil.rmtree(target)  # left by something else than _save_model: incomplete by definition
        if p.spec.train:
            if not may_train:
                raise UserError(f"{p.run_dir}: the model is not trained yet; run shard 0 first (it trains and saves "
                                f"{MODEL_DIR}/), or pass --init CKPT")
            seed_everything(p.spec.seed)  # before building: random initialisation is part of the result
            start = (init_model or load_init(p)) if p.request.init is not None else _build(p)  # --init --train
            model = start.to(p.device)
            ctx = FitContext(workdir=p.run_dir / TRAIN_DIR, seed=p.spec.seed, device=p.device,
                             on_progress=reporter.train if p.info.is_main else None,
                             rank=p.info.rank, world_size=p.info.world_size)
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            train, val = fit_examples(p.dataset, "train"), fit_examples(p.dataset, "val")
            reporter.message(f"training {p.request.model} on {p.request.dataset} train ({len(train)} examples, "
                             f"val {len(val)}); state in {ctx.workdir}")
            model.fit(train, val, ctx)
            if p.info.is_main:
                _save_model(model, p)
            del model  # captioning uses the saved copy; do not hold two in memory
        elif p.info.is_main:
            seed_everything(p.spec.seed)
            if p.request.init is not None:
                model = init_model or load_init(p)
            else:
                model = _build(p)
            _save_model(model, p)
        barrier()
    # Every process and every resumed run captions with the weights read back from model/: identical captions.
    return load_saved(target, p, what=str(target))
