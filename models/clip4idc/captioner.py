"""`Clip4IDC`: the CLIP4IDC captioner (and the `clip-diff` ablation) behind idcbench's `Captioner` interface.

Built from a config dict (see `DEFAULTS`; registered variants are JSON files in ``configs/``):

>>> from idcbench.factory import create_model
>>> m = create_model("clip4idc-tiny", pretrained=None)          # doctest: +SKIP
>>> m.fit(train, val, FitContext(workdir=Path("work")))          # doctest: +SKIP
>>> m.caption([Pair(Path("before.png"), Path("after.png"))])     # doctest: +SKIP
['the red cube is gone']

`init` (a file) loads an official CLIP4IDC checkpoint (stage 1 or 2, `pytorch_model.bin.*`) or an idcbench
``model.pt``; a directory loads an idcbench model saved with `save`. With `init`, the backbone's pretrained weights are
not needed (everything is overwritten) and stage 1 is skipped by `fit`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from idcbench.captioner import Captioner, FitContext, check_config, deep_merge
from idcbench.data import Example, Pair
from idcbench.errors import UserError
from idcbench.files import torch_save_atomic, write_atomic
from idcbench.images import ImageCache, ImagePipeline, default_workers

DEFAULTS: dict[str, Any] = {
    "arch": "pair",                 # "pair" = CLIP4IDC, "diff" = clip-diff (frozen per-image encoder)
    "backbone": "ViT-B-32",         # any open_clip ViT with the CLIP text tower
    "pretrained": "openai",         # open_clip tag, a weights file, or null (random init); never downloaded
    "quick_gelu": None,             # null: as the pretrained tag says (OpenAI weights: QuickGELU)
    "init": None,                   # official CLIP4IDC checkpoint / idcbench model.pt or directory
    "intra_layers": None,           # null: 3/4 of the visual layers (9 of 12)
    "max_words": 32,
    "logit_scale": 100.0,           # stage-1 similarity scale; null: the backbone's own learned logit_scale.exp()
    "decoder": {"heads": 8, "ffn": 2048, "layers": 3, "dropout": 0.1},
    "stages": [1, 2],
    "freeze_official": True,        # the official freezing quirk (conv1, class/pos embeddings, ln_pre, text embeddings)
    "train_token_embedding": False,  # the quirk's exception on Spot-the-Diff: stage 2 only, as the official code
    # stage2.embedding_coef_lr (not official; null = off): with train_token_embedding, the tied word embeddings learn
    # at lr * embedding_coef_lr, even when coef_lr is 0. For backbones with an untrained vocabulary (the miniature
    # CLIP). Stage 2 then moves the text tower's input: retrieval measured after stage 2 is no longer stage 1's.
    "freeze_visual": True,          # arch "diff": keep the visual tower frozen
    "stage1": {"epochs": 12, "batch_size": 128, "lr": 1e-4, "coef_lr": 1e-3, "weight_decay": 0.2, "warmup": 0.1,
               "schedule": "warmup_cosine", "b1": 0.9, "b2": 0.98, "eps": 1e-6, "swap_p": 0.5,
               "max_steps": None, "val_max_pairs": None, "freeze_intra": False,
               "early_stop": None},
    "stage2": {"epochs": 50, "batch_size": 16, "lr": 1e-4, "coef_lr": 1e-3, "weight_decay": 0.01, "warmup": 0.1,
               "schedule": "warmup_linear", "b1": 0.9, "b2": 0.999, "eps": 1e-6, "early_stop": 10,
               "max_steps": None, "val_max_pairs": None, "embedding_coef_lr": None},
    "grad_clip": 1.0,
    "amp": True,                    # bf16 autocast on CUDA
    "precision": "fp32",            # float32 weights; "official-fp16": the official fp16 CLIP (see precision.py)
    "cache_images": False,          # keep resized pixels in memory (small datasets)
    "image_cache": False,           # decoded training images on disk, memory-mapped (idcbench.images.ImageCache)
    "loader_workers": None,         # image decoding processes; null: CUDA all CPUs but one (at most 16), CPU none
    "cache_stage2_tokens": True,    # when CLIP is frozen in stage 2, encode each training pair once
    "cache_intra": True,            # when only the joint blocks learn (freeze_intra), run the intra blocks once per image
    "save_every_steps": 0,
    "restrict_vocab": False,        # CPU option: score only the training captions' tokens (not the official head)
    "eval_batch_size": 64,
    "cuda_eval_batch_size": 512,    # captioning / embedding batch on CUDA (images decoded in DataLoader workers)
    "compile": False,               # CUDA: torch.compile the pair encoder
    "decoding": {"strategy": "greedy", "beam": 3, "length_penalty": 0.0, "max_len": 32},
}


def _none(value: Any) -> Any:
    return None if isinstance(value, str) and value.lower() in ("", "none", "null", "random") else value


class Clip4IDC(Captioner):
    """CLIP4IDC (Guo et al., AACL 2022): CLIP adapted to image pairs by retrieval, then a caption decoder."""

    name = "clip4idc"
    config_defaults = DEFAULTS
    # pixels kept in memory or read from the image cache by workers, the CUDA captioning batch, how often training
    # state is saved: none changes a weight or a caption
    runtime_keys = frozenset({"cache_images", "cuda_eval_batch_size", "save_every_steps", "image_cache",
                              "loader_workers"})

    def __init__(self, config: dict[str, Any] | None = None, *, _weights: Path | None = None):
        from idcbench.models.clip4idc.backbone import create_clip
        from idcbench.models.clip4idc.model import Clip4IDCNet
        from idcbench.models.clip4idc.pairs import ImageLoader
        from idcbench.models.clip4idc.tokenizer import ClipBPE

        check_config(self.name, type(self), config or {})
        super().__init__(config)
        cfg = self.config
        cfg["pretrained"], cfg["init"] = _none(cfg["pretrained"]), _none(cfg["init"])
        if cfg["stages"] == [] or any(s not in (1, 2) for s in cfg["stages"]):
            raise UserError(f"clip4idc: stages must be a subset of [1, 2], got {cfg['stages']}")
        init = Path(cfg["init"]).expanduser() if cfg["init"] else None
        if init is not None and init.is_dir():
            init = init / "model.pt"
        skip_pretrained = init is not None or _weights is not None
        clip = create_clip(cfg["backbone"], None if skip_pretrained else cfg["pretrained"], quick_gelu=self._quick_gelu())
        self.net = Clip4IDCNet(clip, arch=cfg["arch"], intra_layers=cfg["intra_layers"], decoder=cfg["decoder"],
                               freeze_visual=cfg["freeze_visual"])
        self.bpe = ClipBPE()
        self.image_size = int(clip.visual.image_size[0])
        self.images = ImageLoader(self.image_size, cache=cfg["cache_images"])  # in-process, for one-off uses
        self.device = "cpu"
        self._pipeline: ImagePipeline | None = None
        self._image_cache: ImageCache | None = None
        self.init_stage: str | None = None
        self._token_cache: dict[tuple[Path, Path], torch.Tensor] | None = None
        self._intra_cache: dict[Path, torch.Tensor] | None = None
        if _weights is not None:
            self.load_weights(_weights)
        elif init is not None:
            from idcbench.models.clip4idc.checkpoint import load_official, read_state_dict

            self.init_stage = load_official(self.net, read_state_dict(init), source=f"--init {init}")
        self._set_precision()
        self.net.eval()

    def _set_precision(self) -> None:
        from idcbench.models.clip4idc.precision import PRECISIONS, convert_official_fp16

        precision = self.config["precision"]
        if precision not in PRECISIONS:
            raise UserError(f"clip4idc: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "official-fp16":
            convert_official_fp16(self.net.clip)
            self.config["amp"] = False  # the official fp16 recipe runs without autocast

    def _quick_gelu(self) -> bool | None:
        q = self.config["quick_gelu"]
        if q is not None:
            return bool(q)
        if self.config["init"] and self.config["backbone"] in ("ViT-B-32", "ViT-B-16"):
            return True  # official checkpoints are OpenAI CLIP (QuickGELU)
        from idcbench.models.clip4idc.backbone import tag_quick_gelu

        return tag_quick_gelu(self.config["backbone"], self.config["pretrained"])

    # ---- training -------------------------------------------------------------------------------------------------
    def stages_to_run(self) -> list[int]:
        stages = sorted(set(self.config["stages"]))
        if self.init_stage is not None:
            stages = [s for s in stages if s == 2]
        return stages

    def fit(self, train: Sequence[Example], val: Sequence[Example], ctx: FitContext) -> None:
        """Stage 1 (unless `stages` excludes it or `init` was given), then stage 2; resumable in `ctx.workdir`."""
        from idcbench.models.clip4idc.train import fit

        if not train:
            raise UserError("clip4idc: no training examples")
        self.to(ctx.device)
        fit(self, train, val, ctx)
        self.net.eval()

    def begin_stage(self, stage: int) -> None:
        for name, p in self.net.named_parameters():
            frozen_visual = self.net.arch == "diff" and self.config["freeze_visual"] and name.startswith("clip.visual.")
            p.requires_grad_(not frozen_visual)
        if stage == 1:
            # the decoder and the text head are not part of the retrieval loss
            for p in self.net.decoder.parameters():
                p.requires_grad_(False)
            self.net.clip.token_embedding.weight.requires_grad_(True)
            self.net.clip.positional_embedding.requires_grad_(True)
            self.net.decoder.classifier.cls.predictions.bias.requires_grad_(False)

    def prepare_stage(self, stage: int, train: Sequence[Example] = ()) -> None:
        if stage == 2 and self.config["restrict_vocab"]:
            ids = {self.bpe.eot} | {i for e in train for r in e.references for i in self.bpe.bpe(r)[: self.config["max_words"] - 1]}
            self.net.decoder.restrict_vocab(sorted(ids))
        visual_frozen = not any(p.requires_grad for p in self.net.clip.visual.parameters())
        self._intra_cache = None
        if self.net.arch == "pair" and not visual_frozen and self._intra_frozen() and self.config["cache_intra"]:
            # Only the joint blocks learn: each training image goes through the frozen stem + intra blocks once, in a
            # fixed order and batching, so a resumed run sees the very same values.
            self._intra_cache = {}
            paths = list(dict.fromkeys(Path(p) for e in train for p in (e.before, e.after)))
            bs = self.eval_batch_size()
            with torch.no_grad(), self._autocast():
                for i, (x,) in zip(range(0, len(paths), bs), self.image_pipeline().stacked([paths], bs)):
                    self._intra_cache.update(zip(paths[i: i + bs], self.net.encode_intra(self.pixels(x)).float()))
        if stage == 2 and visual_frozen and self.config["cache_stage2_tokens"]:
            # Encode every training pair once, in a fixed order and batching: the values must not depend on which
            # batches a (possibly resumed) run happens to see first.
            self._token_cache = {}
            keys = list(dict.fromkeys((Path(e.before), Path(e.after)) for e in train))
            bs = self.eval_batch_size()
            was_training = self.net.training
            self.net.eval()
            pairs = self.image_pipeline().stacked([[k[0] for k in keys], [k[1] for k in keys]], bs)
            with torch.no_grad(), self._autocast():
                for i, (before, after) in zip(range(0, len(keys), bs), pairs):
                    tok = self.net.encode_pair(self.pixels(before), self.pixels(after)).float()
                    self._token_cache.update(zip(keys[i: i + bs], tok))
            self.net.train(was_training)

    def end_stage(self, stage: int) -> None:
        self._token_cache = None
        self._intra_cache = None

    def _intra_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.net.intra_parameters())

    def needs_step_images(self) -> bool:
        """Whether a training step reads images (False while the intra outputs or the pair tokens are cached)."""
        return self._token_cache is None and self._intra_cache is None

    def pair_tokens_for_training(self, befores: Sequence[Path], afters: Sequence[Path],
                                 images: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Pair tokens of a training batch; `images`: the batch's uint8 (before, after) images when already loaded
        (the training loop's worker pipeline), else they are read here when needed."""
        if self._token_cache is None and self._intra_cache is not None:
            return self.net.encode_joint(self._intra(befores), self._intra(afters))
        if self._token_cache is None:
            before, after = images if images is not None else (self._read(befores), self._read(afters))
            return self.net.encode_pair(self.pixels(before), self.pixels(after))
        keys = list(zip(map(Path, befores), map(Path, afters)))
        missing = [k for k in dict.fromkeys(keys) if k not in self._token_cache]
        if missing:
            with torch.no_grad():
                tok = self.net.encode_pair(self.pixels(self._read([k[0] for k in missing])),
                                           self.pixels(self._read([k[1] for k in missing]))).float()
            self._token_cache.update(zip(missing, tok))
        return torch.stack([self._token_cache[k] for k in keys])

    def _intra(self, paths: Sequence[Path]) -> torch.Tensor:
        missing = [p for p in dict.fromkeys(map(Path, paths)) if p not in self._intra_cache]
        if missing:
            with torch.no_grad(), self._autocast():
                self._intra_cache.update(zip(missing, self.net.encode_intra(self.pixels(self._read(missing))).float()))
        return torch.stack([self._intra_cache[Path(p)] for p in paths]).to(self.net.clip.visual.conv1.weight.dtype)

    # ---- images ---------------------------------------------------------------------------------------------------
    def new_image_pipeline(self) -> ImagePipeline:
        """An image pipeline for the current device (`loader_workers`, `cache_images`, `image_cache`)."""
        c = self.config
        workers = default_workers(self.device) if c["loader_workers"] is None else int(c["loader_workers"])
        if c["image_cache"] and self._image_cache is None:
            self._image_cache = ImageCache(self.image_size)
        return ImagePipeline(self.image_size, device=self.device, workers=workers, memory=bool(c["cache_images"]),
                             cache=self._image_cache if c["image_cache"] else None)

    def image_pipeline(self) -> ImagePipeline:
        """The pipeline of captioning, embedding and the training caches; kept (with its workers) per device."""
        if self._pipeline is None or self._pipeline.device != self.device:
            if self._pipeline is not None:
                self._pipeline.close()
            self._pipeline = self.new_image_pipeline()
        return self._pipeline

    def _read(self, paths: Sequence[Path]) -> torch.Tensor:
        return self.image_pipeline().read(paths)

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (any device) -> CLIP-normalised float32 on the model's device (normalised there)."""
        from idcbench.models.clip4idc.pairs import CLIP_NORMALIZE

        return CLIP_NORMALIZE(images.to(self.device, non_blocking=True))

    def eval_batch_size(self) -> int:
        """Pairs per batch when nothing is trained: `cuda_eval_batch_size` on CUDA, else `eval_batch_size`."""
        return int(self.config["cuda_eval_batch_size" if self.device.startswith("cuda") else "eval_batch_size"])

    # ---- inference ------------------------------------------------------------------------------------------------
    def _autocast(self):
        from idcbench.models.clip4idc.train import _autocast

        return _autocast(self.device, self.config.get("amp", True))

    @torch.no_grad()
    def caption_ids(self, pairs: Sequence[Pair], *, strategy: str | None = None) -> torch.Tensor:
        """Decoded ids (N x max_len) of `pairs`, batch by batch."""
        from idcbench.models.clip4idc.decoder import beam_decode, greedy_decode, greedy_decode_official

        dec = self.config["decoding"]
        strategy = strategy or dec["strategy"]
        self.net.eval()
        outs = []
        for before, after in self._pair_batches(pairs):
            with self._autocast():
                tokens = self._encode_pair()(self.pixels(before), self.pixels(after))
                kw = dict(sot=self.bpe.sot, max_len=dec["max_len"])
                if strategy == "greedy":
                    ids = greedy_decode(self.net.decoder, tokens, eot=self.bpe.eot, **kw)
                elif strategy == "official":
                    ids = greedy_decode_official(self.net.decoder, tokens, **kw)
                elif strategy == "beam":
                    ids = beam_decode(self.net.decoder, tokens, eot=self.bpe.eot, beam=dec["beam"],
                                      length_penalty=dec["length_penalty"], **kw)
                else:
                    raise UserError(f"clip4idc: unknown decoding strategy {strategy!r} (greedy, beam, official)")
            outs.append(ids.cpu())
        return torch.cat(outs) if outs else torch.zeros(0, dec["max_len"], dtype=torch.long)

    def _pair_batches(self, pairs: Sequence[Pair], batch_size: int | None = None):
        """uint8 (before, after) batches on the device, `eval_batch_size` pairs at a time (see `image_pipeline`)."""
        pairs = list(pairs)
        return self.image_pipeline().stacked([[p.before for p in pairs], [p.after for p in pairs]],
                                             batch_size or self.eval_batch_size())

    def _encode_pair(self):
        """`net.encode_pair`, compiled on CUDA when `compile` is set."""
        if not (self.config["compile"] and self.device.startswith("cuda")):
            return self.net.encode_pair
        if getattr(self, "_compiled", None) is None:
            self._compiled = torch.compile(self.net.encode_pair, dynamic=True)
        return self._compiled

    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        return [self.bpe.decode_official(row.tolist()) for row in self.caption_ids(pairs)]

    @torch.no_grad()
    def embed_pairs(self, pairs: Sequence[Pair]) -> torch.Tensor:
        """L2-normalised pair embeddings (N x embed_dim, float32, CPU)."""
        self.net.eval()
        # one batch on the CPU (as many pairs as the caller gives), `cuda_eval_batch_size` pairs at a time on CUDA
        bs = self.eval_batch_size() if self.device.startswith("cuda") else max(1, len(pairs))
        embs = []
        for before, after in self._pair_batches(pairs, bs):
            with self._autocast():
                embs.append(self.net.pair_embedding(self.net.encode_pair(self.pixels(before), self.pixels(after))))
        if not embs:
            return torch.zeros(0, self.net.clip.visual.proj.shape[1])
        return F.normalize(torch.cat(embs).float(), dim=-1).cpu()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings (N x embed_dim, float32, CPU)."""
        self.net.eval()
        ids = self.bpe.text_ids(list(texts), self.config["max_words"]).to(self.device)
        with self._autocast():
            emb = self.net.encode_text(ids)
        return F.normalize(emb.float(), dim=-1).cpu()

    # ---- persistence ----------------------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def load_weights(self, path: Path) -> None:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        if "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        self.net.decoder.restrict_vocab(state.get("decoder.vocab_ids"))
        self.net.load_state_dict(state)
        self.net.to(self.device)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch_save_atomic(self.weights(), directory / "model.pt")
        write_atomic(directory / "config.json",
                     json.dumps({"family": "clip4idc", "config": dict(self.config, init=None)}, indent=2) + "\n")

    def export(self, directory: Path) -> None:
        """A compact checkpoint (`idcbench.models.clip4idc.compact`): fp16, only what differs from the config's
        pretrained backbone and init, only the restricted vocabulary's rows."""
        from idcbench.models.clip4idc import compact

        compact.save_compact(self, directory)

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "Clip4IDC":
        from idcbench.files import read_json

        directory = Path(directory)
        from idcbench.models.clip4idc import compact

        saved = read_json(directory / "config.json", what="clip4idc model config")
        cfg = deep_merge(saved.get("config", saved), overrides)
        if (directory / compact.WEIGHTS).is_file():  # a compact checkpoint (the demo's): the stored differences
            return compact.base_for_load(directory, cfg)
        if not (directory / "model.pt").is_file():
            raise UserError(f"{directory}: model.pt missing; the directory was not written by Clip4IDC.save")
        return cls(cfg, _weights=directory / "model.pt")

    def load_checkpoint(self, path: str | Path) -> str:
        """Load an official CLIP4IDC checkpoint (stage 1 or 2) or an idcbench ``model.pt`` into this model; `fit` then
        skips stage 1. Returns "stage1" or "stage2"."""
        from idcbench.models.clip4idc.checkpoint import load_official, read_state_dict

        self.init_stage = load_official(self.net, read_state_dict(path), source=f"--init {path}")
        self.net.to(self.device)
        return self.init_stage

    def to(self, device: str) -> "Clip4IDC":
        self.device = str(device)
        self.net.to(self.device)
        return self

    def card(self) -> str:
        c = self.config
        kind = "CLIP4IDC" if c["arch"] == "pair" else "clip-diff (frozen per-image CLIP, no adaptation)"
        stages = "+".join(f"stage {s}" for s in c["stages"])
        return f"{kind} on {c['backbone']} ({c['pretrained'] or 'random init'}), {stages}"
