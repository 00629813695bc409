"""The miniature CLIP shipped with idcbench: an open_clip model config (`idc-tiny-vit`, 64 px) and its `tiny` weights.

Importing this package registers the config with open_clip, so ``open_clip.create_model("idc-tiny-vit")`` works,
and registers the shipped weights as its pretrained tag ``tiny``, so
``open_clip.create_model("idc-tiny-vit", pretrained="tiny")`` loads them offline. The weights were pretrained on
single `shapes` scenes and their object descriptions by ``idcbench pretrain-clip`` (see `pretrain.py`); their record
(command, seed, steps, zero-shot numbers) sits next to them in ``weights/idc-tiny-vit-tiny.json``.

>>> import open_clip, idcbench.models.tinyclip as t
>>> t.MODEL_NAME in open_clip.list_models()
True
>>> model = t.create_tiny_clip()              # shipped weights           # doctest: +SKIP
>>> scratch = t.create_tiny_clip(pretrained=None)  # same model, random init
>>> t.tokenizer()(["a small red metal cube"]).shape
torch.Size([1, 32])
>>> same = open_clip.create_model(t.MODEL_NAME, pretrained=str(t.pretrained_path()))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import open_clip
from open_clip import pretrained as _open_clip_pretrained

from idcbench.errors import UserError

MODEL_NAME = "idc-tiny-vit"
PRETRAINED_TAG = "tiny"
IMAGE_SIZE = 64
CONFIG_DIR = Path(__file__).parent / "configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = f"{MODEL_NAME}-{PRETRAINED_TAG}.safetensors"
RECORD_FILE = f"{MODEL_NAME}-{PRETRAINED_TAG}.json"
PRETRAIN_COMMAND = f"idcbench pretrain-clip --dataset shapes --out {WEIGHTS_DIR}"

open_clip.add_model_config(CONFIG_DIR / f"{MODEL_NAME}.json")


def weights_path() -> Path:
    """The shipped compact fp16 weights; a `UserError` saying how to build them when the file is missing."""
    path = WEIGHTS_DIR / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(f"{path}: the tiny CLIP weights are missing; build them with `{PRETRAIN_COMMAND}` "
                        "(about 15 minutes on 2 CPU cores)")
    return path


def record_path() -> Path:
    """The JSON record of how the shipped weights were made (command, seed, steps, time, zero-shot numbers)."""
    return WEIGHTS_DIR / RECORD_FILE


def pretrained_path(tag: str | Path = PRETRAINED_TAG) -> Path:
    """A full-size checkpoint that open_clip's own loader reads (``open_clip.create_model(MODEL_NAME, pretrained=
    str(path))``): `tag` ``"tiny"`` (the shipped weights) or a compact file, expanded once into idcbench's cache."""
    from idcbench.data import cache_dir
    from idcbench.models.tinyclip.checkpoint import materialize

    if str(tag) == PRETRAINED_TAG:
        compact = weights_path()
    elif Path(tag).is_file():
        compact = Path(tag)
    else:
        raise UserError(f"unknown pretrained weights {str(tag)!r} for {MODEL_NAME}: use {PRETRAINED_TAG!r} or the path "
                        "of a .safetensors file written by `idcbench pretrain-clip`")
    return materialize(compact, cache_dir() / "tinyclip")


def load_pretrained(model: open_clip.CLIP, path: str | Path | None = None) -> open_clip.CLIP:
    """Load the shipped weights (or a compact file written by `idcbench pretrain-clip`) into `model`, in place."""
    from idcbench.models.tinyclip.checkpoint import load_compact

    state = load_compact(weights_path() if path is None else path)
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in state.items()}, strict=True)
    return model


@contextmanager
def _quiet_random_init_warning() -> Iterator[None]:
    # open_clip logs "No pretrained weights loaded ... initialized randomly" on every random init; here that is intended
    def drop(record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def create_tiny_clip(pretrained: str | Path | None = PRETRAINED_TAG, **kwargs) -> open_clip.CLIP:
    """The `idc-tiny-vit` CLIP: ``"tiny"`` -> the shipped weights, None -> random init (torch's RNG), or a path to a
    compact weights file. `kwargs` go to `open_clip.create_model` (e.g. ``output_dict=True``, ``device``).

    >>> create_tiny_clip(pretrained=None).visual.image_size
    (64, 64)
    """
    with _quiet_random_init_warning():
        model = open_clip.create_model(MODEL_NAME, **kwargs)
    if pretrained is None:
        return model
    if str(pretrained) == PRETRAINED_TAG:
        return load_pretrained(model)
    if Path(pretrained).is_file():
        return load_pretrained(model, pretrained)
    raise UserError(f"unknown pretrained weights {str(pretrained)!r} for {MODEL_NAME}: use {PRETRAINED_TAG!r}, "
                    "none, or the path of a .safetensors file written by `idcbench pretrain-clip`")


@lru_cache(maxsize=1)
def tokenizer() -> open_clip.tokenizer.SimpleTokenizer:
    """open_clip's CLIP BPE tokenizer with the model's context length (32)."""
    return open_clip.get_tokenizer(MODEL_NAME)


def image_transform():
    """The eval preprocessing (resize to 64, centre crop, CLIP mean/std): `open_clip.image_transform` for this model."""
    return open_clip.image_transform(IMAGE_SIZE, is_train=False)


class _LazyCheckpointCfg(dict):
    """open_clip's pretrained cfg for the `tiny` tag. open_clip reads ``cfg["file"]`` only when the tag is actually
    loaded; this dict builds the full-size checkpoint it needs (from the compact file, into idcbench's cache) then."""

    def __getitem__(self, key):
        if key == "file":
            return str(pretrained_path(PRETRAINED_TAG))
        return super().__getitem__(key)


_open_clip_pretrained._PRETRAINED.setdefault(MODEL_NAME, {})[PRETRAINED_TAG] = _LazyCheckpointCfg(
    _open_clip_pretrained._pcfg(file=WEIGHTS_FILE))
