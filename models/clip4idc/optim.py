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
        """One update of every parameter with a gradient, as whole lists (`torch._foreach_*`): the same arithmetic as
        the official per-tensor loop (`clip_grad_norm_(p)`, then the moments and the update), in a few kernels."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=0, next_m=torch.zeros_like(p), next_v=torch.zeros_like(p))
            if group["max_grad_norm"] > 0:
                same: dict[tuple, list[torch.Tensor]] = {}
                for p in params:
                    same.setdefault((p.device, p.dtype), []).append(p)
                for ps in same.values():
                    _clip_each_(ps, group["max_grad_norm"])
            # the schedule gives each parameter the lr of its own step count; lists share a device and a dtype
            lists: dict[tuple, list[torch.Tensor]] = {}
            for p in params:
                lists.setdefault((self.state[p]["step"], p.device, p.dtype), []).append(p)
            for (step, _, _), ps in lists.items():
                grads = [p.grad for p in ps]
                ms, vs = [self.state[p]["next_m"] for p in ps], [self.state[p]["next_v"] for p in ps]
                torch._foreach_mul_(ms, group["b1"])
                torch._foreach_add_(ms, grads, alpha=1 - group["b1"])
                torch._foreach_mul_(vs, group["b2"])
                torch._foreach_addcmul_(vs, grads, grads, value=1 - group["b2"])
                denom = torch._foreach_sqrt(vs)
                torch._foreach_add_(denom, group["e"])
                update = torch._foreach_div(ms, denom)
                if group["weight_decay"] > 0.0:
                    torch._foreach_add_(update, torch._foreach_mul(ps, group["weight_decay"]))
                torch._foreach_add_(ps, update, alpha=-self.scheduled_lr(group, step))
                for p in ps:
                    self.state[p]["step"] += 1
        return None


def _clip_each_(params: list[torch.Tensor], max_norm: float) -> None:
    """`clip_grad_norm_(p, max_norm)` for each parameter on its own (the per-tensor clip; one device and dtype), without
    waiting for the device: norm of the one-element vector of each gradient's norm, then the gradient times
    ``min(max_norm / (norm + 1e-6), 1)``."""
    grads = [p.grad for p in params]
    norms = torch.stack(torch._foreach_norm(grads))
    total = torch.linalg.vector_norm(norms.unsqueeze(1), dim=1)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    torch._foreach_mul_(grads, list(coef.unbind()))


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
