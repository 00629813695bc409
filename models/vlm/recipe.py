"""A fine-tuning recipe as config data: what trains (LoRA through PEFT, or every weight) and how (the ``train`` group).

``finetune``: null (zero-shot: nothing trains), ``"lora"`` or ``"full"``. ``lora`` holds PEFT ``LoraConfig`` fields
under PEFT's own names (``r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``, ``exclude_modules``,
``modules_to_save``, ``rank_pattern``, ``alpha_pattern``); a string ``target_modules`` / ``exclude_modules`` is a
regular expression that must match a module's whole name (PEFT's rule). The default is LoRA on every linear layer
(``all-linear``: PEFT leaves out the output head) except the vision side (`VISION_SIDE`: vision tower and projector of
the transformers VLMs idcbench ships variants for), i.e. the language model only; a "vision side only" recipe names
the vision modules in ``target_modules`` and sets ``exclude_modules`` to null.

``train`` (both kinds): ``epochs``, ``max_steps`` (null: the epochs), ``batch_size`` (pairs with one reference each
per optimizer step, over all processes: the result does not depend on the world size or on ``micro_batch_size``, the
runtime memory knob), ``lr``, ``param_lr`` ({regex: lr}, searched in parameter names, first match wins: e.g. RSCCM's
10x rate for the projector), ``freeze`` (regex of parameters kept frozen in full fine-tuning), ``weight_decay``,
``warmup_ratio``, ``schedule`` (``cosine``, ``linear``, ``constant``), ``grad_clip``, ``val_every_steps`` (null: at
the end of every epoch), ``val_max_pairs``, ``early_stop`` (validations without improvement before stopping; null:
never), ``save_every_steps``.

>>> check_recipe({"finetune": "lora", "lora": LORA_DEFAULTS, "train": {**TRAIN_DEFAULTS, "lr": 0}, "shots": 0})
Traceback (most recent call last):
...
idcbench.errors.UserError: vlm: train.lr=0: must be a number > 0
>>> lr_for("model.visual.merger.mlp.0.weight", {r"visual\\.merger": 1e-5}, 1e-6)
1e-05
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from idcbench.errors import UserError

FINETUNE_KINDS = (None, "lora", "full")
# the vision tower and the projector of Qwen2/2.5/3-VL (visual), LLaVA-OneVision / InternVL / Gemma 3
# (vision_tower, multi_modal_projector), SmolVLM / Idefics3 (vision_model, connector)
VISION_SIDE = r".*\b(visual|vision_tower|vision_model|multi_modal_projector|connector)\b.*"
LORA_DEFAULTS: dict[str, Any] = {
    "r": 16, "lora_alpha": 32,
    "lora_dropout": 0.0,  # > 0 draws masks per micro-batch: the result then depends on micro_batch_size and world size
    "target_modules": "all-linear", "exclude_modules": VISION_SIDE, "modules_to_save": None,
    "rank_pattern": {}, "alpha_pattern": {},
}
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 1, "max_steps": None, "batch_size": 16, "lr": 1e-4, "param_lr": {}, "freeze": None,
    "weight_decay": 0.0, "warmup_ratio": 0.03, "schedule": "cosine", "grad_clip": 1.0,
    "val_every_steps": None, "val_max_pairs": 500, "early_stop": None, "save_every_steps": 100,
}
SCHEDULES = ("cosine", "linear", "constant")


def _positive(group: str, cfg: Mapping[str, Any], key: str, *, integer: bool, optional: bool = False,
              zero: bool = False) -> None:
    value = cfg.get(key)
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer()) and (value >= 0 if zero else value > 0)
    if not ok:
        kind = "an integer" if integer else "a number"
        raise UserError(f"vlm: {group}.{key}={value!r}: must be {kind} {'>= 0' if zero else '> 0'}"
                        + (" or null" if optional else ""))


def _regex(where: str, pattern: Any) -> None:
    try:
        re.compile(pattern)
    except (re.error, TypeError) as e:
        raise UserError(f"vlm: {where}={pattern!r} is not a regular expression ({e})") from None


def check_recipe(config: Mapping[str, Any]) -> None:
    """Refuse a recipe that cannot run, before any work (one line naming the key)."""
    kind = config.get("finetune")
    if kind not in FINETUNE_KINDS:
        raise UserError(f"vlm: finetune={kind!r}: choose lora, full or null (zero-shot)")
    if kind is None:
        return
    if int(config.get("shots") or 0):
        raise UserError("vlm: finetune with shots > 0: training prompts hold the pair only; use shots=0")
    train = config["train"]
    for key in ("epochs", "batch_size", "lr", "grad_clip"):
        _positive("train", train, key, integer=key in ("epochs", "batch_size"))
    for key in ("max_steps", "val_every_steps", "save_every_steps", "val_max_pairs"):
        _positive("train", train, key, integer=True, optional=True)
    _positive("train", train, "early_stop", integer=True, optional=True, zero=True)
    for key in ("weight_decay", "warmup_ratio"):
        _positive("train", train, key, integer=False, zero=True)
    if train["warmup_ratio"] >= 1:
        raise UserError(f"vlm: train.warmup_ratio={train['warmup_ratio']}: must be below 1")
    if train["schedule"] not in SCHEDULES:
        raise UserError(f"vlm: train.schedule={train['schedule']!r}: choose {', '.join(SCHEDULES)}")
    if not isinstance(train["param_lr"], Mapping):
        raise UserError(f"vlm: train.param_lr={train['param_lr']!r}: must be an object {{regex: lr}}")
    for pattern, lr in train["param_lr"].items():
        _regex("train.param_lr key", pattern)
        _positive("train.param_lr", train["param_lr"], pattern, integer=False)
    if train["freeze"] is not None:
        _regex("train.freeze", train["freeze"])
    if kind == "lora":
        lora = config["lora"]
        _positive("lora", lora, "r", integer=True)
        _positive("lora", lora, "lora_alpha", integer=False)
        if not (isinstance(lora["lora_dropout"], (int, float)) and 0 <= lora["lora_dropout"] < 1):
            raise UserError(f"vlm: lora.lora_dropout={lora['lora_dropout']!r}: must be in [0, 1)")
        for key in ("target_modules", "exclude_modules"):
            if isinstance(lora[key], str) and lora[key] != "all-linear":
                _regex(f"lora.{key}", lora[key])


def lr_for(name: str, param_lr: Mapping[str, float], base: float) -> float:
    """The learning rate of parameter `name`: the first `param_lr` regex found in it, else `base`."""
    for pattern, lr in param_lr.items():
        if re.search(pattern, name):
            return float(lr)
    return float(base)


def apply_recipe(model: Any, config: Mapping[str, Any]) -> Any:
    """`model` ready to train: wrapped with fresh LoRA adapters (the base frozen), or with every parameter trainable
    but those matching ``train.freeze``. LoRA's random initialisation draws from torch's global RNG: seed it first."""
    if config["finetune"] == "lora":
        from peft import LoraConfig, get_peft_model

        from idcbench.models.vlm.adapters import peft_quietly

        lora = dict(config["lora"])
        try:
            peft_config = LoraConfig(task_type=None, bias="none", **lora)
            with peft_quietly():
                model = get_peft_model(model, peft_config)
        except ValueError as e:  # PEFT: no module matched target_modules, or an unsupported layer type
            first = " ".join(str(e).split())[:300]
            raise UserError(f"vlm: the lora recipe does not apply to this model ({first}); check lora.target_modules "
                            "and lora.exclude_modules against the model's module names") from None
        return model
    freeze = config["train"]["freeze"]
    for name, p in model.named_parameters():
        p.requires_grad_(not (freeze and re.search(freeze, name)))
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"vlm: train.freeze={freeze!r} freezes every parameter; nothing would train")
    return model


def trainable_names(model: Any) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def param_groups(model: Any, train: Mapping[str, Any]) -> list[dict[str, Any]]:
    """AdamW groups: trainable parameters grouped by learning rate (`lr_for`), in parameter order."""
    groups: dict[float, list[Any]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(lr_for(name, train["param_lr"], train["lr"]), []).append(p)
    return [{"params": ps, "lr": lr, "initial_lr": lr} for lr, ps in groups.items()]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The learning-rate multiplier at optimizer step `step` (0-based): linear warmup over `warmup` steps, then
    cosine or linear decay to 0 at `total`, or constant.

    >>> [round(lr_factor(s, 10, 2, "cosine"), 3) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.038]
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else max(0.0, 1 - progress)
