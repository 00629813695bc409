"""The official CLIP4IDC optimisation: BertAdam, its warmup schedules, parameter groups and the freezing quirk.

BertAdam (UniVL / CLIP4Clip) is Adam WITHOUT bias correction, with decoupled weight decay added to the update, the lr
schedule applied per step from ``progress = step / t_total`` (the first step has lr 0), and gradient clipping to norm
`max_grad_norm` PER TENSOR inside `step` (the training loop also clips the global norm to 1.0 before it).

>>> warmup_linear(0.05, 0.1), round(warmup_linear(0.55, 0.1), 6), round(warmup_cosine(0.5, 0.1), 6)
(0.5, 0.5, 0.5)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_

from idcbench.models.clip4idc.model import PAIR_PARAMS


def warmup_cosine(x: float, warmup: float = 0.002) -> float:
    return x / warmup if x < warmup else 0.5 * (1.0 + math.cos(math.pi * x))


def warmup_linear(x: float, warmup: float = 0.002) -> float:
    return x / warmup if x < warmup else max((x - 1.0) / (warmup - 1.0), 0.0)


def warmup_constant(x: float, warmup: float = 0.002) -> float:
    return x / warmup if x < warmup else 1.0


SCHEDULES = {"warmup_cosine": warmup_cosine, "warmup_linear": warmup_linear, "warmup_constant": warmup_constant}


class BertAdam(torch.optim.Optimizer):
    """The official optimiser (see the module docstring). Group keys: lr, weight_decay, b1, b2, e, max_grad_norm,
    schedule, warmup, t_total."""

    def __init__(self, params, lr: float, *, warmup: float = 0.1, t_total: int = -1, schedule: str = "warmup_linear",
                 b1: float = 0.9, b2: float = 0.999, e: float = 1e-6, weight_decay: float = 0.01,
                 max_grad_norm: float = 1.0):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}")
        super().__init__(params, dict(lr=lr, schedule=schedule, warmup=warmup, t_total=t_total, b1=b1, b2=b2, e=e,
                                      weight_decay=weight_decay, max_grad_norm=max_grad_norm))

    def scheduled_lr(self, group: dict, step: int) -> float:
        if group["t_total"] == -1:
            return group["lr"]
        return group["lr"] * SCHEDULES[group["schedule"]](step / group["t_total"], group["warmup"])

    def current_lr(self) -> float:
        """The scheduled lr of the first group with state (for progress bars)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    return self.scheduled_lr(group, int(self.state[p]["step"]))
        return 0.0

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["next_m"] = torch.zeros_like(p)
                    state["next_v"] = torch.zeros_like(p)
                if group["max_grad_norm"] > 0:
                    clip_grad_norm_(p, group["max_grad_norm"])
                grad = p.grad
                m, v = state["next_m"], state["next_v"]
                m.mul_(group["b1"]).add_(grad, alpha=1 - group["b1"])
                v.mul_(group["b2"]).addcmul_(grad, grad, value=1 - group["b2"])
                update = m / (v.sqrt() + group["e"])
                if group["weight_decay"] > 0.0:
                    update += group["weight_decay"] * p
                p.add_(update, alpha=-self.scheduled_lr(group, state["step"]))
                state["step"] += 1
        return None


NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")
PAIR_NEW = tuple(f"clip.visual.{name}" for name in PAIR_PARAMS)


def param_groups(net: nn.Module, *, stage: int, lr: float, coef_lr: float, weight_decay: float,
                 embedding_coef_lr: float | None = None) -> list[dict]:
    """The official four groups: (decay / no decay) x (CLIP at lr * coef_lr / new at lr).

    Stage 1: "new" = the pair encoder's parameters (ln_mid, joint positional, before/after embeddings).
    Stage 2: "new" = everything outside `clip.` (the decoder; tied embeddings count as CLIP, their first name).
    Decay is skipped for names containing "bias" or "LayerNorm." (so CLIP's ln_* weights ARE decayed, as officially).
    Frozen parameters are left out. `embedding_coef_lr` (not official; None = off) gives the tied token embedding its own
    group at lr * embedding_coef_lr: a backbone whose vocabulary is mostly untrained (the miniature CLIP) needs the
    decoder's word embeddings to learn at the decoder's pace.
    """
    groups = {(d, c): [] for d in (True, False) for c in (True, False)}
    extra = []
    for name, p in net.named_parameters():  # shared (tied) parameters appear once, under their first name
        if not p.requires_grad:
            continue
        if embedding_coef_lr is not None and name == "clip.token_embedding.weight":
            extra.append({"params": [p], "weight_decay": weight_decay, "lr": lr * embedding_coef_lr})
            continue
        decay = not any(nd in name for nd in NO_DECAY)
        if stage == 1:
            is_clip = name.startswith("clip.") and not any(name.startswith(n) for n in PAIR_NEW)
        else:
            is_clip = name.startswith("clip.")
        groups[(decay, is_clip)].append(p)
    out = []
    for (decay, is_clip), params in groups.items():
        if params:
            out.append({"params": params, "weight_decay": weight_decay if decay else 0.0,
                        "lr": lr * coef_lr if is_clip else lr})
    return out + extra


def freeze_official(net: nn.Module, *, train_token_embedding: bool = False) -> list[str]:
    """The official `freeze_layer_num=0` quirk: freeze CLIP's conv1, class / positional embeddings, ln_pre, the text
    token / positional embeddings (the token embedding stays trainable on Spot-the-Diff). Returns frozen names."""
    keep = ("ln_final.", "text_projection", "logit_scale", "visual.ln_post.", "visual.proj",
            *(f"visual.{n}" for n in PAIR_PARAMS), "visual.transformer.resblocks.", "transformer.resblocks.")
    frozen = []
    for name, p in net.clip.named_parameters():
        if train_token_embedding and name.startswith("token_embedding.weight"):
            continue
        if name.startswith(keep):
            continue
        p.requires_grad_(False)
        frozen.append(name)
    return frozen
