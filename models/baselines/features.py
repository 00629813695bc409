"""Frozen open_clip image features for the baselines: backbone loading (offline only), CLIP preprocessing, feature maps.

Backbones are open_clip models named by `backbone` (``"RN101"``, ``"ViT-B-32"``, ``"idc-tiny-vit"``, ...) with weights
from `pretrained`:

- ``None``: random initialisation (seeded; the weights are saved with the model so a reload captions identically);
- a path to a local file (an open_clip / OpenAI CLIP checkpoint);
- an open_clip tag (``"openai"``, ...) that is already in the Hugging Face cache; nothing is ever downloaded;
- ``"tiny"`` for ``idc-tiny-vit``: the weights shipped in ``models/tinyclip/weights/``.

Images are preprocessed like CLIP4IDC: RGB, bicubic resize to the backbone's square input size without crop or
aspect ratio, CLIP mean/std; through `idcbench.images.ImagePipeline` (decoded in worker processes on CUDA, normalised
on the device; `workers`, `image_cache`).

>>> fx = FrozenFeatures("idc-tiny-vit", None)  # doctest: +SKIP
>>> fx.grid([Path("before.png")]).shape          # doctest: +SKIP
torch.Size([1, 128, 8, 8])
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from idcbench.errors import UserError
from idcbench.images import ImageCache, ImagePipeline, default_workers
from idcbench.models.clip4idc.pairs import CLIP_NORMALIZE


def tiny_weights_available() -> bool:
    """True when ``idc-tiny-vit`` with ``pretrained="tiny"`` loads trained weights rather than falling back to random."""
    from idcbench.models import tinyclip

    try:
        return Path(tinyclip.weights_path()).is_file()
    except (UserError, AttributeError):
        return False


def load_backbone(name: str, pretrained: str | None, *, seed: int = 0,
                  quick_gelu: bool | None = None) -> tuple[torch.nn.Module, bool]:
    """Build the open_clip model `name` with weights `pretrained`, offline. Returns (model in eval mode, is_random).

    `pretrained="tiny"` falls back to a seeded random initialisation when the tiny weights are not installed (the
    caller saves random backbones with the model, so results stay reproducible). `quick_gelu`: None = the tag's own
    setting (OpenAI weights use QuickGELU) or False for a file; pass True for an OpenAI checkpoint file.
    """
    import open_clip

    from idcbench.models import tinyclip  # registers the idc-tiny-vit config with open_clip

    if name not in open_clip.list_models():
        raise UserError(f"unknown open_clip backbone {name!r} (e.g. RN50, RN101, ViT-B-32, idc-tiny-vit)")
    torch.manual_seed(seed)
    if name == tinyclip.MODEL_NAME and pretrained is not None:
        if pretrained == tinyclip.PRETRAINED_TAG and not tiny_weights_available():
            logging.getLogger(__name__).warning("the tiny CLIP weights are not installed: using a random backbone")
            pretrained = None
        else:  # the shipped weights or a compact file from `idcbench pretrain-clip`
            return tinyclip.create_tiny_clip(pretrained).eval(), False
    from idcbench.models.clip4idc.backbone import create_clip

    return create_clip(name, pretrained, quick_gelu=quick_gelu).eval(), pretrained is None


class FrozenFeatures:
    """A frozen open_clip image encoder that returns pooled embeddings or feature grids for image paths.

    `grid_layer`: for a ResNet (open_clip ModifiedResNet), the stage whose output is the grid (4 = layer4, the grid
    before attention pooling; 3 = layer3, DUDA's "conv4" 1024x14x14 for RN101 at 224 px); for a ViT, the transformer
    block (negative counts from the end; -1 = the last) whose patch tokens (after ``ln_post``) form the grid.
    """

    def __init__(self, backbone: str, pretrained: str | None, *, grid_layer: int = -1, seed: int = 0,
                 device: str = "cpu", batch_size: int = 64, state_dict: dict[str, torch.Tensor] | None = None,
                 quick_gelu: bool | None = None, workers: int | None = None, image_cache: bool = False):
        self.backbone = backbone
        self.pretrained = pretrained
        self.grid_layer = grid_layer
        self.batch_size = batch_size
        model, self.is_random = load_backbone(backbone, None if state_dict is not None else pretrained, seed=seed,
                                              quick_gelu=quick_gelu)
        if state_dict is not None:
            model.load_state_dict(state_dict)
            self.is_random = True
        self.visual = model.visual.eval().requires_grad_(False)
        self.device = device
        self.visual.to(device)
        size = getattr(self.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self._model = model
        self.workers, self.image_cache = workers, image_cache
        self._pipeline: ImagePipeline | None = None

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """The full open_clip state dict (saved with a model whose backbone is randomly initialised)."""
        return {k: v.detach().cpu() for k, v in self._model.state_dict().items()}

    def digest(self) -> str:
        """sha256 of the visual weights: identifies the backbone in resumable training state."""
        import hashlib

        h = hashlib.sha256()
        for name, t in self.visual.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def to(self, device: str) -> "FrozenFeatures":
        self.device = device
        self.visual.to(device)
        return self

    def pipeline(self) -> ImagePipeline:
        """The image pipeline for the current device (kept with its workers while the device stays)."""
        if self._pipeline is None or self._pipeline.device != str(self.device):
            if self._pipeline is not None:
                self._pipeline.close()
            workers = default_workers(self.device) if self.workers is None else int(self.workers)
            self._pipeline = ImagePipeline(self.image_size, device=str(self.device), workers=workers,
                                           cache=ImageCache(self.image_size) if self.image_cache else None)
        return self._pipeline

    @property
    def is_resnet(self) -> bool:
        return hasattr(self.visual, "layer4")

    def preprocess(self, paths: Sequence[Path]) -> torch.Tensor:
        """Load images as RGB, bicubic-resize to the backbone size (no crop), normalise with CLIP mean/std: CLIP4IDC's
        preprocessing, in this process, on the CPU."""
        return CLIP_NORMALIZE(self.pipeline().read(paths))

    @torch.no_grad()
    def _encode(self, x: torch.Tensor, what: str) -> torch.Tensor:
        x = x.to(self.device)
        if what == "pooled":
            return self.visual(x).float()
        if self.is_resnet:
            index = self.grid_layer if self.grid_layer >= 0 else 5 + self.grid_layer
            out = self.visual.forward_intermediates(x, indices=[index], intermediates_only=True)
            return out["image_intermediates"][0].float()
        n_blocks = len(self.visual.transformer.resblocks)
        index = self.grid_layer if self.grid_layer >= 0 else n_blocks + self.grid_layer
        out = self.visual.forward_intermediates(x, indices=[index], intermediates_only=True,
                                                normalize_intermediates=True, output_fmt="NCHW")
        return out["image_intermediates"][0].float()

    def encode_unique(self, paths: Sequence[Path], what: str = "grid", *, progress=None,
                      dtype: torch.dtype = torch.float32, out_device: str = "cpu",
                      cache: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of each distinct path once (pairs share before-images): (features, index), where
        ``features[index[i]]`` belongs to ``paths[i]``. ``what`` = ``"grid"`` (N x C x H x W) or ``"pooled"`` (N x D).
        `cache`: first decode the images missing from the image cache into it (training data; with `image_cache`)."""
        unique: dict[Path, int] = {}
        for p in paths:
            unique.setdefault(Path(p), len(unique))
        order = list(unique)
        pipeline = self.pipeline()
        if cache:
            pipeline.add_to_cache(order)
        chunks = []
        for start, (x,) in zip(range(0, len(order), self.batch_size), pipeline.stacked([order], self.batch_size)):
            chunks.append(self._encode(CLIP_NORMALIZE(x), what).to(out_device, dtype))
            if progress is not None:
                progress(min(start + self.batch_size, len(order)), len(order))
        feats = torch.cat(chunks) if chunks else torch.empty(0, device=out_device, dtype=dtype)
        index = torch.tensor([unique[Path(p)] for p in paths], dtype=torch.long, device=out_device)
        return feats, index

    def encode(self, paths: Sequence[Path], what: str = "grid", **kwargs: Any) -> torch.Tensor:
        """Features of `paths` in order (each distinct path computed once)."""
        feats, index = self.encode_unique(paths, what, **kwargs)
        return feats[index]


def check_backbone(fx: FrozenFeatures, digest: str | None, directory: Path) -> None:
    """A saved model's features were computed with one backbone; refuse to load it over different weights."""
    if digest is not None and fx.digest() != digest:
        raise UserError(f"{directory}: the backbone weights ({fx.backbone}, pretrained={fx.pretrained!r}) differ from "
                        "those the model was trained with; restore those weights or retrain the model")


BACKBONE_FILE = "backbone.pt"


class FrozenBackbone:
    """Mixin of the models that read a frozen open_clip backbone (`nearest-neighbour`, `duda`): one lazily built
    `FrozenFeatures` from the config keys backbone, pretrained, quick_gelu, grid_layer, seed, loader_workers,
    image_cache and `feature_batch_key`; saved with the model only when random (pretrained weights are found again by
    name), and checked against the saved digest on load."""

    feature_batch_key = "batch_size"
    # the keys of the image pipeline: where pixels come from, never what they are (recorded, not hashed)
    IMAGE_KEYS: dict[str, Any] = {"loader_workers": None, "image_cache": False}
    _fx: FrozenFeatures | None = None

    def extractor(self, state_dict: dict | None = None) -> FrozenFeatures:
        if self._fx is None:
            c = self.config
            self._fx = FrozenFeatures(c["backbone"], c["pretrained"], grid_layer=c["grid_layer"], seed=c["seed"],
                                      device=self.device, batch_size=c[self.feature_batch_key],
                                      state_dict=state_dict, quick_gelu=c["quick_gelu"],
                                      workers=c["loader_workers"], image_cache=bool(c["image_cache"]))
        return self._fx

    def move_backbone(self, device: str) -> None:
        """Set the model's device and move the backbone (if built) there."""
        self.device = device
        if self._fx is not None:
            self._fx.to(device)

    def save_backbone(self, directory: Path) -> None:
        """Keep a random backbone with the model, so that a reload gives the same captions."""
        from idcbench.files import torch_save_atomic

        fx = self.extractor()
        if fx.is_random:
            torch_save_atomic(fx.backbone_state(), Path(directory) / BACKBONE_FILE)

    def restore_backbone(self, directory: Path, digest: str | None) -> None:
        """The backbone a saved model was trained with: its saved random weights, or the pretrained ones by name
        (refused when their digest differs)."""
        path = Path(directory) / BACKBONE_FILE
        self.extractor(torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None)
        check_backbone(self.extractor(), digest, directory)


def as_pair(item: Any):
    """Accept an `Example` or a `Pair` (anything with `.before` / `.after`)."""
    return item.pair if hasattr(item, "pair") else item


def pair_paths(items: Iterable[Any]) -> tuple[list[Path], list[Path]]:
    pairs = [as_pair(x) for x in items]
    return [Path(p.before) for p in pairs], [Path(p.after) for p in pairs]
