"""Training loops of both CLIP4IDC stages: resumable, deterministic, selected on val.

Images: a step that needs pixels (the visual tower trains and nothing is cached) gets them from the model's image
pipeline (`idcbench.images`): decoded in worker processes ahead of the loop on a GPU machine, normalised on the device.
Every phase of a step is a `torch.profiler.record_function` range (``idcbench.data``, ``.forward``, ``.backward``,
``.optimizer``, ``.progress``; see scripts/profile_tiny_training.py).

State lives in `ctx.workdir`: ``stage{n}_last.pt`` (model, optimizer, torch RNG, epoch, step, best score, patience)
saved at the end of every epoch and every `save_every_steps` steps, ``stage{n}_best.pt`` (the best weights on val) and
``stage{n}_done`` once a stage is complete. A fit that is killed and rerun with the same workdir continues from the last
saved state and ends with the same weights as an uninterrupted run (sampling plans depend only on seed / stage / epoch).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from idcbench.rng import rng_state, set_rng_state
from idcbench.data import Example
from idcbench.distributed import barrier
from idcbench.files import torch_save_atomic
from idcbench.train_log import ValLog
from idcbench.models.clip4idc import pairs as P
from idcbench.models.clip4idc.dist import average_gradients, gather_with_grad, is_distributed
from idcbench.models.clip4idc.optim import BertAdam, freeze_official, param_groups

if TYPE_CHECKING:
    from idcbench.captioner import FitContext
    from idcbench.models.clip4idc.captioner import Clip4IDC


def cider_d(predictions: dict[str, str], references: dict[str, list[str]]) -> float:
    """Corpus CIDEr-D (x100) for checkpoint selection on val, through idcbench's scorer."""
    from idcbench.scoring import score

    return float(score(predictions, references, metrics=["CIDEr-D"]).corpus["total"]["CIDEr-D"])

def _autocast(device: str, amp: bool):
    if amp and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _val_subset(val: Sequence[Example], limit: int | None) -> list[Example]:
    val = list(val)
    if not limit or len(val) <= limit:
        return val
    stride = len(val) / limit
    return [val[int(i * stride)] for i in range(limit)]


class StageRunner:
    """One stage: builds optimizer and schedule, runs epochs with resumable state, evaluates on val, keeps the best."""

    def __init__(self, model: "Clip4IDC", stage: int, ctx: "FitContext", train: Sequence[Example], val: Sequence[Example]):
        self.m, self.stage, self.ctx = model, stage, ctx
        self.cfg = dict(model.config[f"stage{stage}"])
        self.train, self.val = list(train), list(val)
        self.workdir = Path(ctx.workdir)
        self.last, self.best = self.workdir / f"stage{stage}_last.pt", self.workdir / f"stage{stage}_best.pt"
        self.done = self.workdir / f"stage{stage}_done"
        self.device = model.device
        self._rows: dict[str, dict[str, tuple[torch.Tensor, ...]]] = {}
        self.world, self.rank = (ctx.world_size, ctx.rank) if is_distributed() else (1, 0)
        scale = model.config["logit_scale"]
        # null: the backbone's learned temperature (OpenAI CLIP's is 100, the official value), held fixed
        self.logit_scale = float(model.net.clip.logit_scale.detach().exp()) if scale is None else float(scale)

    # ---- batches ----------------------------------------------------------------------------------------------
    def plan(self, epoch: int) -> list:
        seed = self.ctx.seed
        if self.stage == 1:
            return P.stage1_plan(self._samples, seed=seed, epoch=epoch, swap_p=self.cfg["swap_p"])
        return P.stage2_plan(self.train, seed=seed, epoch=epoch)

    def chunks(self, epoch: int) -> list[Sequence]:
        """The batches of `epoch` (kept for the last two epochs asked: the loop and the image stream read them)."""
        if epoch not in self._chunks:
            self._chunks = {e: c for e, c in self._chunks.items() if e >= epoch - 1}
            self._chunks[epoch] = P.batches(self.plan(epoch), self.cfg["batch_size"])
        return self._chunks[epoch]

    def image_lists(self, batch: Sequence) -> tuple[list[Path], ...]:
        """The images a step reads: stage 1 (befores, afters); stage 2 the same for the pairs and the distractors."""
        if self.stage == 1:
            return [s.before for s in batch], [s.after for s in batch]
        dis = [u.dis for u in batch if u.dis is not None]
        return [u.sem[0] for u in batch], [u.sem[1] for u in batch], [d[0] for d in dis], [d[1] for d in dis]

    def step_images(self, epoch: int, step: int, epochs: int, steps: int) -> Iterator[tuple[torch.Tensor, ...] | None]:
        """The uint8 images of the next `steps` steps from (`epoch`, `step`) on, in loop order, on the device (decoded
        ahead in the pipeline's workers); None for each step when the model reads no images."""
        if not self.m.needs_step_images():
            return itertools.repeat(None)

        def jobs() -> Iterator[tuple[list[Path], ...]]:
            e, first, left = epoch, step, steps
            while e < epochs and left > 0:
                chunks = self.chunks(e)
                for i in range(first, min(len(chunks), first + left)):
                    yield self.image_lists(self.local(chunks[i]))
                    left -= 1
                e, first = e + 1, 0

        self._pipeline = self.m.new_image_pipeline()
        return self._pipeline.batches(jobs())

    def steps_per_epoch(self) -> int:
        n = len(self._samples) if self.stage == 1 else len(P.stage2_plan(self.train, seed=0, epoch=0))
        return max(1, math.ceil(n / self.cfg["batch_size"]))

    def local(self, batch: Sequence) -> Sequence:
        return batch[self.rank:: self.world] if self.world > 1 else batch

    # ---- text -------------------------------------------------------------------------------------------------
    def _token_rows(self, kind: str, texts: Sequence[str]) -> tuple[torch.Tensor, ...]:
        """`bpe.text_ids` (kind "text") or `bpe.caption_ids` (kind "caption") of `texts`: each caption's rows are
        made once per stage and stacked per step (the same tensors, without a tokenizer pass per step)."""
        rows = self._rows.setdefault(kind, {})
        missing = [t for t in dict.fromkeys(texts) if t not in rows]
        if missing:
            made = (self.m.bpe.text_ids if kind == "text" else self.m.bpe.caption_ids)(missing, self.m.config["max_words"])
            made = (made,) if isinstance(made, torch.Tensor) else made
            rows.update(zip(missing, zip(*made)))
        return tuple(torch.stack(parts) for parts in zip(*(rows[t] for t in texts)))

    # ---- losses -----------------------------------------------------------------------------------------------
    def loss_stage1(self, batch: Sequence[P.RetrievalSample], images: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        m, net = self.m, self.m.net
        text, = self._token_rows("text", [s.caption for s in batch])  # cut on the CPU by encode_text
        pair = net.pair_embedding(m.pair_tokens_for_training([s.before for s in batch], [s.after for s in batch], images))
        txt = net.encode_text(text)
        pair, txt = gather_with_grad(pair.float()), gather_with_grad(txt.float())
        logits = net.similarity(pair, txt, self.logit_scale)
        target = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2

    def caption_loss(self, triples: Sequence[tuple[Path, Path, str]],
                     images: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        m, net = self.m, self.m.net
        tokens = m.pair_tokens_for_training([t[0] for t in triples], [t[1] for t in triples], images)
        inp, tgt, mask = self._token_rows("caption", [t[2] for t in triples])
        # Positions after the batch's longest caption are padding on every row: the causal, answer-masked decoder
        # never attends to them and the loss skips them, so they are cut rather than computed.
        n = max(1, int(mask.sum(dim=1).max()))
        inp, tgt, mask = (t[:, :n] for t in (inp, tgt, mask))
        # CE with ignore_index 0: only the kept positions need the vocabulary projection. Their indices are found on
        # the CPU, so the device never has to report how many there are (a boolean mask index would wait for it).
        keep = (tgt != 0).flatten().nonzero().squeeze(1)
        inp, tgt, mask, keep = (t.to(self.device, non_blocking=True) for t in (inp, tgt, mask, keep))
        dec = net.decoder
        hidden = dec.hidden(inp, dec.encode(tokens), mask)
        logits = dec.classify(hidden.flatten(0, 1).index_select(0, keep))
        return F.cross_entropy(logits.float(), dec.to_index(tgt.flatten().index_select(0, keep)), ignore_index=-100)

    def loss_stage2(self, batch: Sequence[P.CaptionUnit], images: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        loss = self.caption_loss([u.sem for u in batch], images[:2] if images is not None else None)
        dis = [u.dis for u in batch if u.dis is not None]
        if dis:
            loss = loss + self.caption_loss(dis, images[2:] if images is not None else None)
        return loss

    # ---- validation -------------------------------------------------------------------------------------------
    def evaluate(self) -> float:
        val = _val_subset(self.val, self.cfg["val_max_pairs"])
        if not val:
            return float("nan")
        if self.stage == 1:
            from idcbench.metrics.retrieval import evaluate_retrieval

            val = [e for e in val if e.tags.get("kind") != "distractor"]  # no-change captions are not retrieved
            return evaluate_retrieval(self.m, val, batch_size=self.m.eval_batch_size())["t2p_R@1"]
        preds = self.m.caption([e.pair for e in val])
        return cider_d({e.id: p for e, p in zip(val, preds)}, {e.id: list(e.references) for e in val})

    # ---- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        m, net, cfg = self.m, self.m.net, self.cfg
        if self.done.exists():
            m.load_weights(self.best if self.best.exists() else self.last)
            return
        self._samples = P.stage1_samples(self.train) if self.stage == 1 else None
        m.begin_stage(self.stage)  # every parameter trainable again (the diff arch keeps its frozen visual tower)
        # The official code unfreezes the token embedding on Spot-the-Diff in stage 2 only (stage 1 keeps the quirk).
        train_token_embedding = bool(m.config["train_token_embedding"]) and self.stage == 2
        if m.config["freeze_official"]:
            freeze_official(net, train_token_embedding=train_token_embedding)
        embedding_coef_lr = cfg.get("embedding_coef_lr") if train_token_embedding else None
        if cfg["coef_lr"] == 0:
            for name, p in net.clip.named_parameters():
                if not (embedding_coef_lr and name == "token_embedding.weight"):
                    p.requires_grad_(False)
        if cfg.get("freeze_intra") and net.arch == "pair":
            # CPU option: train only the joint part of the pair encoder (and the text tower)
            for p in net.intra_parameters():
                p.requires_grad_(False)
        m.prepare_stage(self.stage, self.train)
        epochs, spe = int(cfg["epochs"]), self.steps_per_epoch()
        total = epochs * spe if not cfg["max_steps"] else min(epochs * spe, int(cfg["max_steps"]))
        opt = BertAdam(param_groups(net, stage=self.stage, lr=cfg["lr"], coef_lr=cfg["coef_lr"],
                                    weight_decay=cfg["weight_decay"], embedding_coef_lr=embedding_coef_lr),
                       lr=cfg["lr"], warmup=cfg["warmup"], t_total=total, schedule=cfg["schedule"],
                       b1=cfg["b1"], b2=cfg["b2"], e=cfg["eps"],
                       weight_decay=cfg["weight_decay"])  # BertAdam's per-tensor clip: the official 1.0
        params = [p for g in opt.param_groups for p in g["params"]]
        state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": None, "bad_epochs": 0}
        if self.last.exists():
            saved = torch.load(self.last, map_location="cpu", weights_only=False)
            net.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            set_rng_state(saved["rng"])
            state = saved["state"]
        else:
            torch.manual_seed(self.ctx.seed * 1000 + self.stage)
        self._clock = time.perf_counter()
        # the curve: rows after the saved state (a kill between a validation and its save) are dropped
        self._curve = ValLog(self.workdir / f"stage{self.stage}_log.jsonl", start_epoch=state["epoch"])
        save_every = int(m.config["save_every_steps"] or 0)
        stop = False
        self._chunks, self._pipeline = {}, None
        images = self.step_images(state["epoch"], state["step_in_epoch"], epochs, total - state["global_step"])
        # On CUDA a step shows the loss of the step before: reading a finished step's loss leaves this one queued.
        lag = self.device.startswith("cuda")
        shown = None
        try:
            while state["epoch"] < epochs and not stop:
                chunks = self.chunks(state["epoch"])
                net.train()
                for i in range(state["step_in_epoch"], len(chunks)):
                    if state["global_step"] >= total:
                        stop = True
                        break
                    with record_function("idcbench.data"):
                        pixels = next(images)
                    with _autocast(self.device, m.config["amp"]), record_function("idcbench.forward"):
                        batch = self.local(chunks[i])
                        loss = self.loss_stage1(batch, pixels) if self.stage == 1 else self.loss_stage2(batch, pixels)
                    with record_function("idcbench.backward"):
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                    with record_function("idcbench.optimizer"):
                        average_gradients(params)
                        torch.nn.utils.clip_grad_norm_(params, m.config["grad_clip"])
                        opt.step()
                    state["global_step"] += 1
                    state["step_in_epoch"] = i + 1
                    with record_function("idcbench.progress"):
                        logs = {} if lag and shown is None else {"loss": float(shown if lag else loss.detach())}
                        shown = loss.detach()
                        self.ctx.progress(f"stage{self.stage}", state["global_step"], total, **logs, lr=opt.current_lr())
                    if save_every and state["global_step"] % save_every == 0 and i + 1 < len(chunks):
                        self._save(net, opt, state)
                # end of epoch (or of the step budget): validate, keep the best, early stop
                net.eval()
                score = self.evaluate()
                self._log(state, score)
                better = state["best"] is None or (score == score and score >= state["best"])
                if better:
                    state["best"], state["bad_epochs"] = score, 0
                    if self.rank == 0:
                        torch_save_atomic(m.weights(), self.best)
                else:
                    state["bad_epochs"] += 1
                self.ctx.progress(f"stage{self.stage}-val", state["epoch"] + 1, epochs, score=float(score))
                state["epoch"] += 1
                state["step_in_epoch"] = 0
                patience = cfg.get("early_stop")
                if patience and state["bad_epochs"] > int(patience):
                    stop = True
                if state["global_step"] >= total:
                    stop = True
                self._save(net, opt, state)
        finally:
            if self._pipeline is not None:
                self._pipeline.close()
        barrier()  # rank 0 writes best/last; every rank reads them
        m.load_weights(self.best if self.best.exists() else self.last)
        m.end_stage(self.stage)
        if self.rank == 0:
            self.done.touch()

    def _log(self, state: dict, score: float) -> None:
        """One line per validation in ``stage{n}_log.jsonl`` (`idcbench.train_log`): epoch, step, training seconds so
        far, val score (the training curve; t2p R@1 in stage 1, CIDEr-D x100 in stage 2)."""
        now = time.perf_counter()
        state["seconds"] = state.get("seconds", 0.0) + now - self._clock
        self._clock = now
        if self.rank == 0:
            value, metric = (score, "t2p R@1") if self.stage == 1 else (score * 100, "CIDEr-D")
            self._curve.add(state["epoch"] + 1, state["global_step"], state["seconds"], value, metric)

    def _save(self, net, opt, state) -> None:
        if self.rank == 0:
            torch_save_atomic({"model": net.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(),
                          "state": dict(state)}, self.last)


def training_images(model: "Clip4IDC", train: Sequence[Example], val: Sequence[Example], stages: Sequence[int]) -> list[Path]:
    """Every image the stages read: the training pairs' and those of each stage's validation subset."""
    val = [e for s in stages for e in _val_subset(val, model.config[f"stage{s}"]["val_max_pairs"])]
    return list(dict.fromkeys(Path(p) for e in [*train, *val] for p in (e.before, e.after)))


def fit(model: "Clip4IDC", train: Sequence[Example], val: Sequence[Example], ctx: "FitContext") -> None:
    Path(ctx.workdir).mkdir(parents=True, exist_ok=True)
    stages = model.stages_to_run()
    todo = [s for s in stages if not (Path(ctx.workdir) / f"stage{s}_done").exists()]
    if model.config["image_cache"] and todo:  # decoded once here, read by every epoch, stage and later model
        model.image_pipeline().add_to_cache(training_images(model, train, val, todo),
                                            lambda done, n: ctx.progress("image cache", done, n))
    for stage in stages:
        StageRunner(model, stage, ctx, train, val).run()
