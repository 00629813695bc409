"""Contrastive pretraining of the miniature CLIP on `shapes` scenes (`idcbench pretrain-clip`).

open_clip's model (`idc-tiny-vit`) and loss (`ClipLoss`), AdamW with linear warmup then cosine decay, batches drawn
fresh from the scene generator (`data.training_batch`, rendered ahead in a thread or in worker processes). The run is
a function of its config: the same config, device and thread count give the same weights.

Writes into the output directory the compact fp16 weights (`checkpoint.py`) and a JSON record: command, config,
time, file size and hash, and the checks of `evaluate.py` for the saved weights and for the same model at random init.

>>> record = pretrain(PretrainConfig(steps=2, batch_size=8, warmup_steps=1), "/tmp/tiny",
...                   eval_views=1, eval_scenes=8)  # doctest: +SKIP
>>> record["eval"]["pretrained"]["zero_shot"]["simple"]["color"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import open_clip
import torch

from idcbench.models.tinyclip import MODEL_NAME, PRETRAINED_TAG, RECORD_FILE, WEIGHTS_FILE, create_tiny_clip, tokenizer
from idcbench.models.tinyclip.checkpoint import base_token_embedding, save_compact
from idcbench.files import file_sha256
from idcbench.models.tinyclip.data import batches, to_tensor
from idcbench.models.tinyclip.evaluate import evaluate

ProgressFn = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that determines the pretrained weights (with the torch version and the thread count)."""

    steps: int = 800
    batch_size: int = 128
    lr: float = 3e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 40
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    twins: float = 0.5
    seed: int = 0


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup over `warmup_steps`, then cosine from `lr` down to `lr * min_lr_ratio` at the last step.

    >>> cfg = PretrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.0)
    >>> lr_at(0, cfg), lr_at(9, cfg), lr_at(10, cfg), round(lr_at(99, cfg), 6)
    (0.1, 1.0, 1.0, 0.0)
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: not on gains, biases, logit scale, positional or token embeddings.

    No decay on the token embedding matters for the weights format: rows of tokens that never occur then stay
    bit-identical to their deterministic init and need not be stored.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        exempt = p.ndim < 2 or "embedding" in name or "logit_scale" in name
        (no_decay if exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def new_model(seed: int) -> open_clip.CLIP:
    """The random init pretraining starts from: torch seeded with `seed`, token embedding from the frozen init."""
    torch.manual_seed(seed)
    model = create_tiny_clip(pretrained=None, output_dict=True)
    with torch.no_grad():
        model.token_embedding.weight.copy_(base_token_embedding(*model.token_embedding.weight.shape))
    return model


def train(cfg: PretrainConfig, on_progress: ProgressFn | None = None, *, device: str = "cpu", threads: int = 2,
          workers: int = 1) -> open_clip.CLIP:
    """Run the pretraining loop and return the trained model (fp32, CPU, eval mode).

    `threads`: torch CPU threads; `workers`: processes rendering batches (1: a thread). Neither changes the batches;
    `device` and `threads` change floating-point rounding, so weights are bit-identical only for the same values.
    """
    torch.set_num_threads(threads)
    model = new_model(cfg.seed).to(device)
    model.train()
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    tok = tokenizer()
    started = time.perf_counter()
    for step, (images, texts) in enumerate(batches(cfg.seed, cfg.batch_size, cfg.steps, twins=cfg.twins, workers=workers)):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        out = model(to_tensor(images).to(device), tok(texts).to(device))
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        with torch.no_grad():  # CLIP's clamp: the temperature may not go below 1/100
            model.logit_scale.clamp_(0, math.log(100))
        if on_progress is not None:
            elapsed = time.perf_counter() - started
            on_progress(step + 1, cfg.steps, {"loss": float(loss.detach()), "lr": lr, "steps_per_s": (step + 1) / elapsed,
                                              "logit_scale": float(model.logit_scale.detach().exp())})
    return model.cpu().eval()


def pretrain(cfg: PretrainConfig, out_dir: str | Path, *, on_progress: ProgressFn | None = None,
             on_stage: Callable[[str], None] | None = None, command: str | None = None, device: str = "cpu",
             threads: int = 2, workers: int = 1,
             eval_views: int = 3, eval_scenes: int = 256) -> dict:
    """Train, save the compact weights and the record into `out_dir`, evaluate both inits; return the record."""
    out_dir = Path(out_dir)
    started = time.perf_counter()
    model = train(cfg, on_progress, device=device, threads=threads, workers=workers)
    train_seconds = time.perf_counter() - started
    weights = save_compact(model, out_dir / WEIGHTS_FILE)
    if on_stage is not None:
        on_stage(f"wrote {weights}; evaluating it and the random init on held-out scenes")

    shipped = create_tiny_clip(pretrained=weights)  # evaluate exactly what was written (fp16-rounded)
    scratch = new_model(cfg.seed).eval()
    record = {
        "model": MODEL_NAME,
        "tag": PRETRAINED_TAG,
        "command": command,
        "config": asdict(cfg),
        "data": "shapes scenes of 1-6 objects drawn fresh per batch, half of them in twin pairs that differ in one "
                "attribute of one object (idcbench.models.tinyclip.data.training_batch)",
        "run": {"device": _device_name(device), "threads": threads, "workers": workers,
                "train_seconds": round(train_seconds, 1)},
        "file": weights.name,
        "bytes": weights.stat().st_size,
        "sha256": file_sha256(weights),
        "stored_token_rows": int(_stored_rows(weights)),
        "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__, "python": platform.python_version()},
        "eval": {"pretrained": evaluate(shipped, views=eval_views, n_scenes=eval_scenes),
                 "random_init": evaluate(scratch, views=eval_views, n_scenes=eval_scenes)},
    }
    (out_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _stored_rows(weights: Path) -> int:
    from safetensors import safe_open

    from idcbench.models.tinyclip.checkpoint import IDS_KEY

    with safe_open(str(weights), framework="pt") as f:
        return f.get_slice(IDS_KEY).get_shape()[0]


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
