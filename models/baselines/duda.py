"""DUDA, the Dual Dynamic Attention model of Park, Darrell and Rohrbach, "Robust Change Captioning", ICCV 2019
(arXiv 1901.02527), on frozen open_clip feature grids.

Dual attention (change localisation). With X_bef, X_aft the C x H x W feature maps (plus two coordinate channels,
as in the official code) and X_diff = X_aft - X_bef:

    a_bef = sigmoid(conv2(ReLU(conv1([X_bef ; X_diff]))))     a_aft = sigmoid(conv2(ReLU(conv1([X_aft ; X_diff]))))
    l_bef = sum_HW a_bef * X_bef      l_aft = sum_HW a_aft * X_aft      l_diff = l_aft - l_bef

(conv1 / conv2 are 1x1 and shared by both images; conv1 is followed by GroupNorm and dropout as in the authors' code.)

Dynamic speaker. At step t an attention LSTM reads v = ReLU(W_d1 [l_bef ; l_diff ; l_aft] + b) and the previous caption
hidden state, and weighs the three features; the caption LSTM reads the previous word and the attended feature:

    h_d(t) = LSTM_d([v ; h_c(t-1)], h_d(t-1))     alpha(t) = softmax(W_d2 h_d(t) + b)
    l_dyn(t) = sum_i alpha_i(t) l_i               h_c(t) = LSTM_c([E w(t-1) ; l_dyn(t)], h_c(t-1))
    p(w_t) = softmax(W_c h_c(t) + b_c)

Loss: cross-entropy + `l1_weight` x the L1 norm of the spatial attention maps of change pairs (sparsity, 2.5e-3 in
the authors' code) - `entropy_weight` x the entropy of alpha over change pairs (the paper's regulariser that keeps all
three features in use; off by default, 1e-4 in the authors' README). Sizes of the paper / code: attention 128, v 512,
word embedding 300, LSTMs 512, dropout 0.5, Adam lr 1e-3, lr x0.1 every 15 epochs, greedy decoding. The paper reads
ResNet-101 conv4 (layer3, 1024 x 14 x 14 at 224 px); the `duda` variant takes the same grid from CLIP's RN101.

Differences from the authors' code: features come from a frozen open_clip model (any: a ResNet stage or ViT patch
tokens as a grid); a batch samples examples (not scene ids with both their pairs); the epoch is chosen on val CIDEr-D
(greedy captions, simple word tokenization) instead of a snapshot every 1000 iterations.

Training randomness (initialisation, shuffling, the reference drawn per example and epoch, dropout) follows the run's
seed (`FitContext.seed`); the config's `seed` only initialises a random backbone. State is saved to
``ctx.workdir/duda_state.pt`` after every epoch; `fit` with the same data, config, backbone and seed continues from it.

Config keys: backbone, pretrained, quick_gelu, grid_layer, coords, att_dim, embed_dim, word_dim, hidden, dropout, vocab_min_count,
max_len, epochs, batch_size, lr, lr_step_epochs, lr_gamma, weight_decay, grad_clip, l1_weight, entropy_weight,
val_max_examples, early_stop, feature_dtype, image_batch_size, seed, device, loader_workers, image_cache. Each
validation is a row of ``ctx.workdir/val_log.jsonl`` (epoch, step, training seconds, val CIDEr-D): the training curve.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from idcbench.captioner import Captioner, FitContext
from idcbench.data import Example, Pair
from idcbench.errors import UserError
from idcbench.files import read_json, torch_save_atomic, write_atomic
from idcbench.models.baselines.features import FrozenBackbone, pair_paths
from idcbench.models.baselines.text import Vocabulary, corpus_cider_d
from idcbench.train_log import VAL_LOG, ValLog

DEFAULTS: dict[str, Any] = {
    "backbone": "idc-tiny-vit",
    "pretrained": "tiny",
    "grid_layer": -1,
    "quick_gelu": None,
    "coords": True,
    "att_dim": 32,
    "embed_dim": 128,
    "word_dim": 64,
    "hidden": 128,
    "dropout": 0.1,
    "vocab_min_count": 1,
    "max_len": 24,
    "epochs": 10,
    "batch_size": 32,
    "lr": 3e-3,
    "lr_step_epochs": 15,
    "lr_gamma": 0.1,
    "weight_decay": 0.0,
    "grad_clip": None,
    "l1_weight": 2.5e-3,
    "entropy_weight": 0.0,
    "val_max_examples": 1000,
    "early_stop": None,  # stop after more than this many epochs without a better val CIDEr-D (null: every epoch)
    "feature_dtype": "float32",
    "image_batch_size": 64,
    "seed": 0,
    "device": "cpu",
    **FrozenBackbone.IMAGE_KEYS,
}

# Keys that do not change the trained weights (a resumed fit may differ in them).
_RUNTIME_KEYS = {"device", "image_batch_size", "epochs", *FrozenBackbone.IMAGE_KEYS}


def add_coords(x: torch.Tensor) -> torch.Tensor:
    """Append x and y coordinate channels in [-1, 1) (the authors' AddSpatialInfo)."""
    b, _, h, w = x.shape
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) * 2.0 / w - 1).view(1, 1, 1, w).expand(b, 1, h, w)
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) * 2.0 / h - 1).view(1, 1, h, 1).expand(b, 1, h, w)
    return torch.cat([x, xs, ys], dim=1)


class DualAttention(nn.Module):
    """Difference-conditioned spatial attention on each image; returns l_bef, l_aft, l_diff and both maps."""

    def __init__(self, feat_dim: int, att_dim: int, dropout: float):
        super().__init__()
        self.embed = nn.Sequential(nn.Conv2d(2 * feat_dim, att_dim, 1), nn.GroupNorm(math.gcd(32, att_dim), att_dim),
                                   nn.Dropout(dropout), nn.ReLU())
        self.att = nn.Conv2d(att_dim, 1, 1)

    def forward(self, x_bef: torch.Tensor, x_aft: torch.Tensor):
        x_diff = x_aft - x_bef
        a_bef = torch.sigmoid(self.att(self.embed(torch.cat([x_bef, x_diff], 1))))
        a_aft = torch.sigmoid(self.att(self.embed(torch.cat([x_aft, x_diff], 1))))
        l_bef = (x_bef * a_bef).sum((2, 3))
        l_aft = (x_aft * a_aft).sum((2, 3))
        return l_bef, l_aft, l_aft - l_bef, a_bef, a_aft


class DynamicSpeaker(nn.Module):
    """Attention LSTM over (before, difference, after) and caption LSTM."""

    def __init__(self, vocab_size: int, feat_dim: int, embed_dim: int, word_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.hidden = hidden
        self.word = nn.Sequential(nn.Embedding(vocab_size, word_dim), nn.ReLU(), nn.Dropout(dropout))
        self.embed = nn.Sequential(nn.Linear(3 * feat_dim, embed_dim), nn.ReLU(), nn.Dropout(dropout))
        self.att_lstm = nn.LSTMCell(embed_dim + hidden, hidden)
        self.weight_fc = nn.Linear(hidden, 3)
        self.lang_lstm = nn.LSTMCell(word_dim + feat_dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.logit = nn.Linear(hidden, vocab_size)

    def init_state(self, batch: int, like: torch.Tensor):
        z = like.new_zeros(batch, self.hidden)
        return (z, z), (z, z)

    def step(self, word: torch.Tensor, feats: torch.Tensor, state):
        """One step. `feats`: B x 3 x D stacked (l_bef, l_diff, l_aft). Returns logits, alpha, state."""
        (h_d, c_d), (h_c, c_c) = state
        v = self.embed(feats.flatten(1))
        h_d, c_d = self.att_lstm(torch.cat([v, h_c], 1), (h_d, c_d))
        alpha = F.softmax(self.weight_fc(h_d), dim=1)
        l_dyn = (alpha.unsqueeze(2) * feats).sum(1)
        h_c, c_c = self.lang_lstm(torch.cat([self.word(word), l_dyn], 1), (h_c, c_c))
        return self.logit(self.drop(h_c)), alpha, ((h_d, c_d), (h_c, c_c))


class DUDANet(nn.Module):
    def __init__(self, in_dim: int, vocab_size: int, c: dict[str, Any]):
        super().__init__()
        feat_dim = in_dim + (2 if c["coords"] else 0)
        self.coords = bool(c["coords"])
        self.dual = DualAttention(feat_dim, int(c["att_dim"]), float(c["dropout"]))
        self.speaker = DynamicSpeaker(vocab_size, feat_dim, int(c["embed_dim"]), int(c["word_dim"]), int(c["hidden"]),
                                      float(c["dropout"]))

    def encode(self, x_bef: torch.Tensor, x_aft: torch.Tensor):
        x_bef, x_aft = x_bef.float(), x_aft.float()
        if self.coords:
            x_bef, x_aft = add_coords(x_bef), add_coords(x_aft)
        l_bef, l_aft, l_diff, a_bef, a_aft = self.dual(x_bef, x_aft)
        return torch.stack([l_bef, l_diff, l_aft], 1), a_bef, a_aft

    def forward(self, x_bef, x_aft, tokens):
        """Teacher forcing: logits for tokens[:, 1:] (B x T-1 x V), alphas (B x T-1 x 3), attention maps."""
        feats, a_bef, a_aft = self.encode(x_bef, x_aft)
        state = self.speaker.init_state(tokens.shape[0], feats)
        logits, alphas = [], []
        for t in range(tokens.shape[1] - 1):
            out, alpha, state = self.speaker.step(tokens[:, t], feats, state)
            logits.append(out)
            alphas.append(alpha)
        return torch.stack(logits, 1), torch.stack(alphas, 1), a_bef, a_aft

    @torch.no_grad()
    def greedy(self, x_bef, x_aft, max_len: int) -> torch.Tensor:
        feats, _, _ = self.encode(x_bef, x_aft)
        b = feats.shape[0]
        state = self.speaker.init_state(b, feats)
        word = torch.full((b,), Vocabulary.BOS, dtype=torch.long, device=feats.device)
        out = []
        done = torch.zeros(b, dtype=torch.bool, device=feats.device)
        for t in range(max_len + 1):
            logits, _, state = self.speaker.step(word, feats, state)
            logits[:, Vocabulary.PAD] = -math.inf
            logits[:, Vocabulary.BOS] = -math.inf
            if t == 0:  # as the authors' decoder: never end before the first word
                logits[:, Vocabulary.EOS] = -math.inf
            word = logits.argmax(1)
            word = torch.where(done, torch.full_like(word, Vocabulary.EOS), word)
            out.append(word)
            done |= word == Vocabulary.EOS
            if bool(done.all()):
                break
        return torch.stack(out, 1)


class DUDA(FrozenBackbone, Captioner):
    """DUDA (Park et al., ICCV 2019): dual attention + dynamic speaker LSTM on frozen open_clip feature grids."""

    name = "duda"
    config_defaults = DEFAULTS
    # where and in how large batches features are read, and where the pixels come from
    runtime_keys = frozenset({"device", "image_batch_size", *FrozenBackbone.IMAGE_KEYS})
    feature_batch_key = "image_batch_size"

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        self.device = self.config["device"]
        self.vocab: Vocabulary | None = None
        self.net: DUDANet | None = None
        self.history: list[dict[str, float]] = []

    def _grids(self, items: Sequence[Any], progress=None, *, cache: bool = False):
        """Unique feature grids of the items' images and (before, after) indices into them (`cache`: training
        images go to the image cache)."""
        before, after = pair_paths(items)
        dtype = getattr(torch, self.config["feature_dtype"])
        feats, index = self.extractor().encode_unique(before + after, "grid", progress=progress, dtype=dtype,
                                                      out_device=self.device, cache=cache)
        return feats, index[: len(before)], index[len(before):]

    def to(self, device: str) -> "DUDA":
        self.move_backbone(device)
        if self.net is not None:
            self.net.to(device)
        return self

    # -- training -----------------------------------------------------------------------------------------------
    def _fingerprint(self, train: Sequence[Example], seed: int) -> str:
        cfg = {k: v for k, v in self.config.items() if k not in _RUNTIME_KEYS}
        h = hashlib.sha256(json.dumps([cfg, seed], sort_keys=True, default=str).encode())
        h.update(self.extractor().digest().encode())  # "tiny" may mean shipped weights or a random fallback
        for ex in train:
            h.update(f"{ex.id}\t{ex.before}\t{ex.after}\t{'|'.join(ex.references)}\n".encode())
        return h.hexdigest()

    def fit(self, train: Sequence[Example], val: Sequence[Example], ctx: FitContext) -> None:
        c = self.config
        if not train:
            raise UserError("duda: the training split is empty")
        if ctx.device != self.device:
            self.to(ctx.device)
        workdir = Path(ctx.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        state_path = workdir / "duda_state.pt"
        seed = int(ctx.seed)  # the run's seed: init, shuffling, drawn references, dropout (config "seed": backbone)
        fingerprint = self._fingerprint(train, seed)
        self.vocab = Vocabulary.build([r for ex in train for r in ex.references], int(c["vocab_min_count"]))
        torch.manual_seed(seed)
        self.net = None

        feats, tr_b, tr_a = self._grids(train, lambda i, n: ctx.progress("features", i, n), cache=True)
        self.net = DUDANet(feats.shape[1], len(self.vocab), c).to(self.device)
        val = list(val)[: c["val_max_examples"]] if c["val_max_examples"] else list(val)
        if val:
            vfeats, va_b, va_a = self._grids(val, lambda i, n: ctx.progress("val features", i, n), cache=True)
        semantic = torch.tensor([(ex.tags or {}).get("kind") != "distractor" for ex in train], device=self.device)
        tokens = [[self.vocab.encode(r, int(c["max_len"])) for r in ex.references] for ex in train]

        opt = torch.optim.Adam(self.net.parameters(), lr=float(c["lr"]), weight_decay=float(c["weight_decay"]))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(c["lr_step_epochs"]), gamma=float(c["lr_gamma"]))
        start, best, best_state, self.history = 0, -1.0, None, []
        bad, stopped, seconds = 0, False, 0.0
        if state_path.is_file():
            saved = torch.load(state_path, map_location=self.device, weights_only=False)
            if saved.get("fingerprint") == fingerprint:
                self.net.load_state_dict(saved["net"])
                opt.load_state_dict(saved["opt"])
                sched.load_state_dict(saved["sched"])
                start, best, best_state, self.history = saved["epoch"] + 1, saved["best"], saved["best_state"], saved["history"]
                bad, stopped, seconds = saved.get("bad_epochs", 0), saved.get("stopped", False), saved.get("seconds", 0.0)
        log = ValLog(workdir / VAL_LOG, start)  # rows of epochs after the saved state (a kill in between) are dropped
        clock = time.perf_counter()
        patience = c.get("early_stop")

        n, bs, epochs = len(train), int(c["batch_size"]), int(c["epochs"])
        steps_per_epoch = math.ceil(n / bs)
        for epoch in range(start, epochs if not stopped else start):
            g = torch.Generator().manual_seed(seed * 100003 + epoch)
            torch.manual_seed(seed * 100003 + epoch)  # dropout: the same masks whether resumed or not
            perm = torch.randperm(n, generator=g).tolist()
            pick = torch.randint(0, 1 << 30, (n,), generator=g).tolist()
            self.net.train()
            total = 0.0
            for s in range(steps_per_epoch):
                idx = perm[s * bs:(s + 1) * bs]
                seqs = [tokens[i][pick[i] % len(tokens[i])] for i in idx]
                width = max(len(q) for q in seqs)
                tok = torch.tensor([q + [Vocabulary.PAD] * (width - len(q)) for q in seqs], device=self.device)
                it = torch.tensor(idx, device=self.device)
                logits, alphas, a_bef, a_aft = self.net(feats[tr_b[it]], feats[tr_a[it]], tok)
                target = tok[:, 1:]
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                       ignore_index=Vocabulary.PAD)
                sem = semantic[it].float()
                if c["l1_weight"]:
                    att = (a_bef.flatten(1).sum(1) + a_aft.flatten(1).sum(1)) * sem
                    loss = loss + float(c["l1_weight"]) * att.sum() / (2 * len(idx))
                if c["entropy_weight"]:
                    mask = (target != Vocabulary.PAD).float() * sem[:, None]
                    ent = -(alphas * alphas.clamp_min(1e-12).log()).sum(2)
                    loss = loss - float(c["entropy_weight"]) * (ent * mask).sum() / len(idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if c["grad_clip"]:
                    nn.utils.clip_grad_norm_(self.net.parameters(), float(c["grad_clip"]))
                opt.step()
                total += float(loss.detach())
                ctx.progress("train", epoch * steps_per_epoch + s + 1, epochs * steps_per_epoch, loss=float(loss.detach()))
            sched.step()
            record = {"epoch": epoch, "loss": total / steps_per_epoch}
            if val:
                caps = self._decode(vfeats, va_b, va_a)
                score, _ = corpus_cider_d({ex.id: list(ex.references) for ex in val},
                                          {ex.id: cap for ex, cap in zip(val, caps)})
                record["val_cider_d"] = score * 100
            score = record.get("val_cider_d", float(epoch))  # without val: the last epoch
            if score > best:
                best, bad = score, 0
                best_state = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
            else:
                bad += 1
            stopped = patience is not None and bad > int(patience)
            self.history.append(record)
            ctx.progress("epoch", epoch + 1, epochs, **record)
            now = time.perf_counter()
            seconds, clock = seconds + now - clock, now
            log.add(epoch + 1, (epoch + 1) * steps_per_epoch, seconds, record.get("val_cider_d"), "CIDEr-D")
            torch_save_atomic({"fingerprint": fingerprint, "epoch": epoch, "net": self.net.state_dict(),
                          "opt": opt.state_dict(), "sched": sched.state_dict(), "best": best,
                          "best_state": best_state, "history": self.history, "bad_epochs": bad, "stopped": stopped,
                          "seconds": seconds}, state_path)
            if stopped:
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()

    # -- inference ----------------------------------------------------------------------------------------------
    def _decode(self, feats, idx_b, idx_a) -> list[str]:
        self.net.eval()
        out: list[str] = []
        bs = int(self.config["batch_size"]) * 4
        for s in range(0, len(idx_b), bs):
            seq = self.net.greedy(feats[idx_b[s:s + bs]], feats[idx_a[s:s + bs]], int(self.config["max_len"]))
            out.extend(self.vocab.decode(row) for row in seq.tolist())
        return out

    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        if self.net is None or self.vocab is None:
            raise UserError("duda: the model is not trained; fit or load it first")
        out: list[str] = []
        chunk = max(1, int(self.config["image_batch_size"]) * 8)
        for s in range(0, len(pairs), chunk):
            feats, b, a = self._grids(pairs[s:s + chunk])
            out.extend(self._decode(feats, b, a))
        return out

    def save(self, directory: Path) -> None:
        if self.net is None or self.vocab is None:
            raise UserError("duda: nothing to save; fit the model first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.name, "config": self.config, "in_dim": self._in_dim(), "history": self.history,
                "backbone_digest": self.extractor().digest()}
        write_atomic(directory / "config.json", json.dumps(meta, indent=2))
        write_atomic(directory / "vocab.json", json.dumps(self.vocab.itos))
        torch_save_atomic({k: v.cpu() for k, v in self.net.state_dict().items()}, directory / "weights.pt")
        self.save_backbone(directory)

    def _in_dim(self) -> int:
        return self.net.dual.embed[0].in_channels // 2 - (2 if self.net.coords else 0)

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "DUDA":
        directory = Path(directory)
        meta = read_json(directory / "config.json", what="model config")
        model = cls({**meta.get("config", {}), **overrides})
        if not (directory / "weights.pt").is_file():
            raise UserError(f"{directory}: weights.pt missing (not a saved duda model)")
        model.vocab = Vocabulary(read_json(directory / "vocab.json", what="duda vocabulary"))
        model.net = DUDANet(int(meta["in_dim"]), len(model.vocab), model.config)
        model.net.load_state_dict(torch.load(directory / "weights.pt", map_location="cpu", weights_only=True))
        model.net.to(model.device).eval()
        model.history = meta.get("history", [])
        model.restore_backbone(directory, meta.get("backbone_digest"))
        return model
