"""`vlm` fine-tuning: LoRA or full, on the train split, selected on val by greedy captioning and CIDEr-D.

Every (train pair, reference) is one example: the zero-shot path's two-image prompt, rendered by the model's own chat
template, followed by the reference and the end-of-turn token; the loss is on those last tokens only (`collate`). An
optimizer step takes ``train.batch_size`` examples from a permutation that depends on the seed and the epoch only;
each process takes a strided share of them in micro-batches of ``micro_batch_size``, and the summed token losses are
divided by the label tokens of the whole step (all processes, all micro-batches) before the gradients are summed over
processes: a step's gradient is the same whatever the world size or micro-batch size (up to float summation order).
bf16 autocast on CUDA (LoRA adapters and full fine-tuning's weights stay float32, a frozen base in ``dtype``).

State in `FitContext.workdir`: ``last.pt`` (trainable weights, optimizer, RNG, progress) every
``train.save_every_steps`` steps and after each validation, ``best.pt`` (the trainable weights of the best val
CIDEr-D; ties go to the later step), ``done`` once finished, ``train_log.jsonl`` (per step: loss, lr, label tokens)
and ``val_log.jsonl`` (per validation: step, CIDEr-D x100, best so far). A fit killed and rerun with the same workdir
continues from ``last.pt`` and ends with the same weights as an uninterrupted one.

Why a loop of its own rather than TRL's ``SFTTrainer`` or transformers' ``Trainer``: selection must use idcbench's
scorer on captions made by this family's own caption path; a resumed fit must be bit-identical (data order a pure
function of seed and epoch, RNG and optimizer restored at the step); the loss must be normalised over the whole step
across processes so that world size and micro-batch size (not part of the run spec) do not change the result; and
nothing may download. PEFT makes, saves and loads the adapters.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from idcbench.rng import rng_state, set_rng_state
from idcbench.data import Example, Pair
from idcbench.distributed import barrier, is_distributed
from idcbench.errors import UserError
from idcbench.files import torch_save_atomic, write_atomic
from idcbench.models.vlm.collate import caption_loss, completion_ids, end_token_ids, training_batch
from idcbench.models.vlm.recipe import lr_factor, param_groups, trainable_names

if TYPE_CHECKING:
    from idcbench.captioner import FitContext
    from idcbench.models.vlm.transformers_vlm import TransformersVLM

LAST, BEST, DONE = "last.pt", "best.pt", "done"
TRAIN_LOG, VAL_LOG = "train_log.jsonl", "val_log.jsonl"


def caption_units(train: Sequence[Example]) -> list[tuple[Pair, str]]:
    """One training example per non-empty reference of every train pair, in split order.

    >>> from pathlib import Path
    >>> units = caption_units([Example("0", Path("b"), Path("a"), ("the cube moved ", "", "a cube moved"))])
    >>> [c for _, c in units]
    ['the cube moved', 'a cube moved']
    """
    return [(e.pair, r.strip()) for e in train for r in e.references if r.strip()]


def val_subset(val: Sequence[Example], limit: int | None) -> list[Example]:
    """At most `limit` val pairs, evenly strided over the split (all when `limit` is null)."""
    val = [e for e in val if any(r.strip() for r in e.references)]
    if not limit or len(val) <= limit:
        return val
    stride = len(val) / limit
    return [val[int(i * stride)] for i in range(limit)]


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The permutation of the `n` examples in `epoch`: a function of the seed and the epoch only."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _all_sum(values: list[float], device: str) -> list[float]:
    if not is_distributed():
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _all_gather(obj: Any) -> list[Any]:
    if not is_distributed():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _trim_log(path: Path, step: int) -> None:
    """Drop the rows of steps after `step` (a resumed fit redoes them) and a torn last line."""
    if not path.exists():
        return
    rows = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                rows.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # the line a kill cut short
    write_atomic(path, "".join(row + "\n" for row in rows))


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


class FineTuner:
    """One fit of a `TransformersVLM` whose recipe is set (``finetune``: lora or full)."""

    def __init__(self, vlm: "TransformersVLM", train: Sequence[Example], val: Sequence[Example], ctx: "FitContext"):
        self.vlm, self.ctx = vlm, ctx
        self.cfg = dict(vlm.config["train"])
        self.units = caption_units(train)
        if not self.units:
            raise UserError("vlm: the train split has no pair with a reference to fine-tune on")
        self.val = val_subset(val, self.cfg["val_max_pairs"])
        self.workdir = Path(ctx.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rank, self.world = (ctx.rank, ctx.world_size) if is_distributed() else (0, 1)
        self.micro = max(1, int(vlm.config["micro_batch_size"]))
        self.spe = math.ceil(len(self.units) / int(self.cfg["batch_size"]))
        epochs_total = int(self.cfg["epochs"]) * self.spe
        self.total = min(epochs_total, int(self.cfg["max_steps"])) if self.cfg["max_steps"] else epochs_total
        self.warmup = int(round(float(self.cfg["warmup_ratio"]) * self.total))
        self._completions: dict[str, list[int]] = {}
        self._order: tuple[int, list[int]] = (-1, [])

    # ---- data -------------------------------------------------------------------------------------------------
    def completion(self, caption: str) -> list[int]:
        if caption not in self._completions:
            vlm = self.vlm
            placeholder = {"type": "image"}  # the template renders an image part the same whatever its pixels
            prompt = [{"role": "user", "content": [placeholder, placeholder,
                                                   {"type": "text", "text": vlm.instruction()}]}]
            self._completions[caption] = completion_ids(vlm._processor, prompt, caption, self._end_ids,
                                                        vlm.config["chat_template_kwargs"])
        return self._completions[caption]

    def step_units(self, epoch: int, index: int) -> list[int]:
        if self._order[0] != epoch:
            self._order = (epoch, epoch_order(len(self.units), self.ctx.seed, epoch))
        size = int(self.cfg["batch_size"])
        return self._order[1][index * size:(index + 1) * size]

    # ---- one optimizer step -----------------------------------------------------------------------------------
    def step(self, model: Any, opt: Any, params: list[Any], chosen: list[int]) -> tuple[float, int]:
        import torch

        mine = chosen[self.rank::self.world]
        local_tokens = sum(len(self.completion(self.units[i][1])) for i in mine)
        (tokens,) = _all_sum([float(local_tokens)], self.vlm.device)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        processor, pad = self.vlm._processor, self.vlm._processor.tokenizer.pad_token_id
        for start in range(0, len(mine), self.micro):
            part = [self.units[i] for i in mine[start:start + self.micro]]
            batch, labels = training_batch(processor, self.vlm.conversations([p for p, _ in part]),
                                           [self.completion(c) for _, c in part],
                                           self.vlm.config["chat_template_kwargs"], pad)
            batch = {k: v.to(self.vlm.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with self.vlm.autocast():
                loss = caption_loss(model, batch, labels)
            (loss / tokens).backward()
            loss_sum += float(loss.detach())
        if is_distributed():
            import torch.distributed as dist

            for p in params:  # a rank without examples in this step still takes part in every reduction
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
        torch.nn.utils.clip_grad_norm_(params, float(self.cfg["grad_clip"]))
        opt.step()
        (loss_total,) = _all_sum([loss_sum], self.vlm.device)
        return loss_total / tokens, int(tokens)

    # ---- validation -------------------------------------------------------------------------------------------
    def evaluate(self, model: Any) -> float:
        """Val CIDEr-D x100 of greedy captions (each process captions a strided share; all get the same score)."""
        from idcbench.scoring import score

        if not self.val:
            return float("nan")
        model.eval()
        mine = self.val[self.rank::self.world]
        captions: dict[str, str] = {}
        batch = int(self.vlm.config["micro_batch_size"])
        with self.vlm.greedy(), self.vlm.autocast():
            for i in range(0, len(mine), batch):
                chunk = mine[i:i + batch]
                captions.update({e.id: str(c) for e, c in zip(chunk, self.vlm.caption([e.pair for e in chunk]))})
        for part in _all_gather(captions):
            captions.update(part)
        model.train()
        refs = {e.id: list(e.references) for e in self.val}
        return 100 * float(score(captions, refs, metrics=["CIDEr-D"]).corpus["total"]["CIDEr-D"])

    # ---- state ------------------------------------------------------------------------------------------------
    def trainable_state(self, model: Any) -> dict[str, Any]:
        return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}

    def load_trainable(self, model: Any, state: dict[str, Any]) -> None:
        import torch

        named = dict(model.named_parameters())
        missing = [n for n in trainable_names(model) if n not in state]
        if missing or any(n not in named for n in state):
            raise UserError(f"{self.workdir}: the saved training state does not fit this recipe (e.g. "
                            f"{(missing or [n for n in state if n not in named])[0]}); delete the folder or use --force")
        with torch.no_grad():
            for n, value in state.items():
                named[n].copy_(value)

    def save_last(self, model: Any, opt: Any, state: dict[str, Any]) -> None:
        if self.rank == 0:
            torch_save_atomic({"trainable": self.trainable_state(model), "optimizer": opt.state_dict(),
                               "rng": rng_state(), "state": dict(state)}, self.workdir / LAST)

    # ---- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        import torch

        vlm = self.vlm
        model = vlm.training_model(seed=self.ctx.seed)
        best, last = self.workdir / BEST, self.workdir / LAST
        if (self.workdir / DONE).exists():
            self._finish(model, best, last)
            return
        self._end_ids = end_token_ids(model, vlm._processor.tokenizer)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(param_groups(model, self.cfg), weight_decay=float(self.cfg["weight_decay"]))
        schedule = self.cfg["schedule"]
        state = {"epoch": 0, "step_in_epoch": 0, "step": 0, "best": None, "best_step": None, "bad": 0,
                 "seconds": 0.0, "stopped": False}
        if last.exists():
            saved = torch.load(last, map_location="cpu", weights_only=False)
            self.load_trainable(model, saved["trainable"])
            opt.load_state_dict(saved["optimizer"])
            set_rng_state(saved["rng"])
            state = saved["state"]
        if self.rank == 0:
            for log in (TRAIN_LOG, VAL_LOG):
                _trim_log(self.workdir / log, state["step"])
        model.train()
        clock = time.perf_counter()
        val_every, save_every = self.cfg["val_every_steps"], self.cfg["save_every_steps"]
        while state["step"] < self.total and not state["stopped"]:
            for index in range(state["step_in_epoch"], self.spe):
                factor = lr_factor(state["step"], self.total, self.warmup, schedule)
                for group in opt.param_groups:
                    group["lr"] = group["initial_lr"] * factor
                loss, tokens = self.step(model, opt, params, self.step_units(state["epoch"], index))
                state["step"] += 1
                state["step_in_epoch"] = index + 1
                if self.rank == 0:
                    _append(self.workdir / TRAIN_LOG, {"step": state["step"], "epoch": state["epoch"] + 1,
                                                       "loss": round(loss, 6), "lr": opt.param_groups[0]["lr"],
                                                       "tokens": tokens})
                self.ctx.progress("finetune", state["step"], self.total, loss=loss, lr=opt.param_groups[0]["lr"])
                end = state["step"] >= self.total
                due = end or (val_every and state["step"] % int(val_every) == 0) or (
                    not val_every and index + 1 == self.spe)
                if due:
                    now = time.perf_counter()
                    state["seconds"] += now - clock
                    clock = now
                    self._validate(model, state, best)
                    self.save_last(model, opt, state)
                elif save_every and state["step"] % int(save_every) == 0:
                    self.save_last(model, opt, state)
                if end or state["stopped"]:
                    break
            else:
                state["epoch"] += 1
                state["step_in_epoch"] = 0
        barrier()  # rank 0 wrote best/last; every rank reads them
        if self.rank == 0:
            (self.workdir / DONE).touch()
        self._finish(model, best, last)

    def _validate(self, model: Any, state: dict[str, Any], best: Path) -> None:
        score = self.evaluate(model)
        improved = score == score and (state["best"] is None or score >= state["best"])
        if improved:
            state["best"], state["best_step"], state["bad"] = score, state["step"], 0
            if self.rank == 0:
                torch_save_atomic(self.trainable_state(model), best)
        elif score == score:
            state["bad"] += 1
            patience = self.cfg["early_stop"]
            if patience is not None and state["bad"] > int(patience):
                state["stopped"] = True
        if self.rank == 0:
            _append(self.workdir / VAL_LOG, {"step": state["step"], "epoch": state["epoch"] + 1,
                                             "seconds": round(state["seconds"], 2),
                                             "val_cider_d": None if score != score else round(score, 4),
                                             "best_step": state["best_step"]})
        self.ctx.progress("finetune-val", state["step"], self.total, cider_d=score)

    def _finish(self, model: Any, best: Path, last: Path) -> None:
        """The model ends with the best val weights (the last ones when there is no val split)."""
        import torch

        if best.exists():
            self.load_trainable(model, torch.load(best, map_location="cpu", weights_only=False))
        elif last.exists():
            self.load_trainable(model, torch.load(last, map_location="cpu", weights_only=False)["trainable"])
        model.eval()


def fit(vlm: "TransformersVLM", train: Sequence[Example], val: Sequence[Example], ctx: "FitContext") -> None:
    FineTuner(vlm, train, val, ctx).run()
