"""Nearest-neighbour captioning with consensus re-ranking (Devlin et al. 2015, "Exploring Nearest Neighbor Approaches
for Image Captioning", arXiv 1505.04467), applied to image pairs.

A pair is embedded by frozen open_clip features of the before image, the after image and their difference
(``after - before``), each L2-normalised, weighted by `parts`, concatenated and L2-normalised again. Features are the
pooled image embedding (``features="pooled"``) or the flattened patch / grid features (``features="patch"``, optionally
average-pooled to ``grid_pool`` x ``grid_pool``). The k nearest training pairs by cosine similarity are found exactly
(chunked matrix product on the model's device; equal similarities are ordered by training index). Their reference
captions, in neighbour order, are the candidates; the caption is the candidate with the highest mean CIDEr-D against
the other candidates (document frequencies from the training references; ties go to the nearer neighbour). The output
is always a training caption, verbatim.

Config keys: backbone, pretrained, quick_gelu, features ("pooled" | "patch"), grid_layer, grid_pool, parts ([before, after, diff]
weights), k, chunk_size, batch_size, seed (random-init backbones), device.

>>> from idcbench.factory import create_model
>>> m = create_model("nearest-neighbour-tiny")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from idcbench.captioner import Captioner, FitContext
from idcbench.data import Example, Pair
from idcbench.errors import UserError
from idcbench.files import read_json, torch_save_atomic, write_atomic
from idcbench.models.baselines.features import FrozenBackbone, pair_paths
from idcbench.models.baselines.text import consensus_choice, document_frequency, tokenize

DEFAULTS: dict[str, Any] = {
    "backbone": "idc-tiny-vit",
    "pretrained": "tiny",
    "features": "patch",
    "grid_layer": -1,
    "quick_gelu": None,
    "grid_pool": None,
    "parts": [1.0, 1.0, 1.0],
    "k": 10,
    "chunk_size": 1024,
    "batch_size": 64,
    "seed": 0,
    "device": "cpu",
    **FrozenBackbone.IMAGE_KEYS,
}


def knn(queries: torch.Tensor, index: torch.Tensor, k: int, chunk_size: int = 1024) -> list[list[int]]:
    """Exact k nearest rows of `index` by dot product for each query, best first; ties ordered by row index."""
    k = min(k, index.shape[0])
    out: list[list[int]] = []
    for start in range(0, queries.shape[0], chunk_size):
        sims = queries[start:start + chunk_size].to(index.device, index.dtype) @ index.T
        kth = sims.topk(k, dim=1).values[:, -1:]
        sims = sims.float().cpu().numpy()
        kth = kth.float().cpu().numpy()
        for row, t in zip(sims, kth):
            cand = np.flatnonzero(row >= t[0])
            order = np.lexsort((cand, -row[cand]))  # by similarity descending, then index ascending
            out.append(cand[order[:k]].tolist())
    return out


class NearestNeighbour(FrozenBackbone, Captioner):
    """Nearest-neighbour retrieval of a training caption, chosen by CIDEr-D consensus (Devlin et al. 2015)."""

    name = "nearest-neighbour"
    config_defaults = DEFAULTS
    # exact search: the chunking of the similarity matrix is not a result; nor where the pixels come from
    runtime_keys = frozenset({"device", "chunk_size", *FrozenBackbone.IMAGE_KEYS})
    trainable = True

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        if self.config["features"] not in ("pooled", "patch"):
            raise UserError(f"nearest-neighbour: features must be 'pooled' or 'patch', not {self.config['features']!r}")
        if len(self.config["parts"]) != 3:
            raise UserError("nearest-neighbour: parts must give 3 weights (before, after, difference)")
        self.device = self.config["device"]
        self.embeddings: torch.Tensor | None = None
        self.captions: list[list[str]] = []
        self._df: tuple[dict, float] | None = None

    def pair_embeddings(self, pairs: Sequence[Any], progress=None, *, cache: bool = False) -> torch.Tensor:
        """Pair embeddings (N x D, unit norm) as described in the module docstring. (Not named `embed_pairs`: this
        model embeds no texts, so it is not a `RetrievalModel`.) `cache`: training images go to the image cache."""
        before, after = pair_paths(pairs)
        fx = self.extractor()
        what = "pooled" if self.config["features"] == "pooled" else "grid"
        feats = fx.encode(before + after, what, progress=progress, out_device=self.device, cache=cache)
        if what == "grid" and self.config["grid_pool"]:
            feats = F.adaptive_avg_pool2d(feats, int(self.config["grid_pool"]))
        feats = feats.flatten(1)
        fb, fa = feats[: len(before)], feats[len(before):]
        parts = [F.normalize(x, dim=1) * w for x, w in zip((fb, fa, fa - fb), self.config["parts"]) if w]
        return F.normalize(torch.cat(parts, dim=1), dim=1)

    # -- interface ----------------------------------------------------------------------------------------------
    def to(self, device: str) -> "NearestNeighbour":
        self.move_backbone(device)
        if self.embeddings is not None:
            self.embeddings = self.embeddings.to(device)
        return self

    def fit(self, train: Sequence[Example], val: Sequence[Example], ctx: FitContext | None) -> None:
        if not train:
            raise UserError("nearest-neighbour: the training split is empty")
        if ctx is not None and ctx.device != self.device:
            self.to(ctx.device)
        progress = (lambda i, n: ctx.progress("features", i, n)) if ctx is not None else None
        self.embeddings = self.pair_embeddings(train, progress=progress, cache=True)
        self.captions = [list(ex.references) for ex in train]
        self._df = None

    def _doc_freq(self) -> tuple[dict, float]:
        if self._df is None:
            self._df = document_frequency([[tokenize(r) for r in refs] for refs in self.captions])
        return self._df

    def neighbours(self, pairs: Sequence[Any]) -> list[list[int]]:
        """Training indices of the k nearest pairs of each query, nearest first."""
        if self.embeddings is None:
            raise UserError("nearest-neighbour: the model has no training index; fit or load it first")
        q = self.pair_embeddings(pairs)
        return knn(q, self.embeddings, int(self.config["k"]), int(self.config["chunk_size"]))

    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        df, ref_len = self._doc_freq()
        out = []
        batch = max(1, int(self.config["chunk_size"]))
        for start in range(0, len(pairs), batch):
            for nbrs in self.neighbours(pairs[start:start + batch]):
                candidates = [c for i in nbrs for c in self.captions[i]]
                if not candidates:
                    out.append("")
                    continue
                out.append(candidates[consensus_choice(candidates, df, ref_len)])
        return out

    def save(self, directory: Path) -> None:
        if self.embeddings is None:
            raise UserError("nearest-neighbour: nothing to save; fit the model first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.name, "config": self.config, "backbone_digest": self.extractor().digest()}
        write_atomic(directory / "config.json", json.dumps(meta, indent=2))
        torch_save_atomic({"embeddings": self.embeddings.cpu(), "captions": self.captions}, directory / "index.pt")
        self.save_backbone(directory)

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "NearestNeighbour":
        directory = Path(directory)
        cfg = read_json(directory / "config.json", what="model config")
        model = cls({**cfg.get("config", {}), **overrides})
        if not (directory / "index.pt").is_file():
            raise UserError(f"{directory}: index.pt missing (not a saved nearest-neighbour model)")
        state = torch.load(directory / "index.pt", map_location="cpu", weights_only=True)
        model.restore_backbone(directory, cfg.get("backbone_digest"))
        model.embeddings = state["embeddings"].to(model.device)
        model.captions = [list(c) for c in state["captions"]]
        return model
