"""Compact checkpoints of small CLIP4IDC models (the demo ships them): fp16, and only what differs from the model that
the config builds before any training.

A model built from its config has its backbone's pretrained weights (for the demo the shipped miniature CLIP) and a
fixed random init of its new parameters (seed `BASE_SEED`). The file stores every tensor that differs from that, in
fp16: a backbone frozen in training costs nothing, one fine-tuned costs its size in fp16. Tensors with a row per
vocabulary token (the 49,408-row token embedding, tied into the decoder, and the head's bias) store only the rows of
the model's restricted vocabulary (`restrict_vocab`: the training captions' tokens): the only rows captioning reads.
Loading builds the same base and writes the stored values over it, so the captions of a loaded compact model are
computed from the stored (fp16) values, on every machine the same.

Folder: ``config.json`` (as `Clip4IDC.save` writes it) and ``weights.safetensors`` (metadata: format, the keys that
share one tensor, the vocabulary size).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from idcbench.errors import UserError
from idcbench.files import atomic_target, read_safetensors, write_atomic

if TYPE_CHECKING:
    from idcbench.models.clip4idc.captioner import Clip4IDC

FORMAT = "idcbench.clip4idc.compact/1"
WEIGHTS = "weights.safetensors"
BASE_SEED = 0  # the init of new parameters that the stored differences are taken against; part of the format
IDS_KEY = "vocab_ids"
ROWS = "@rows"  # suffix of a tensor stored as the rows of `vocab_ids`


def base_model(config: dict) -> "Clip4IDC":
    """The model `config` builds before training (pretrained backbone, new parameters from `BASE_SEED`); the global
    RNG is left as it was."""
    from idcbench.models.clip4idc.captioner import Clip4IDC

    state = torch.get_rng_state()
    try:
        torch.manual_seed(BASE_SEED)
        return Clip4IDC({**config, "init": None})
    finally:
        torch.set_rng_state(state)


def _shared_keys(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """key -> the first key of the same storage (tied tensors appear under several names)."""
    first: dict[tuple[int, tuple[int, ...]], str] = {}
    out = {}
    for key, t in state.items():
        owner = first.setdefault((t.data_ptr(), tuple(t.shape)), key)
        if owner != key:
            out[key] = owner
    return out


def save_compact(model: "Clip4IDC", directory: str | Path) -> Path:
    """Write `model` in the compact format into `directory` (config.json and weights.safetensors, atomically)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    aliases = _shared_keys(state)
    base = base_model(model.config).net.state_dict()
    vocab = model.net.decoder.vocab_ids
    vocab_size = model.net.clip.token_embedding.weight.shape[0]
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in aliases or key == "decoder.vocab_ids" or torch.equal(value, base[key]):
            continue
        if not value.is_floating_point():
            tensors[key] = value.contiguous()
        elif vocab is not None and value.ndim >= 1 and value.shape[0] == vocab_size:
            tensors[key + ROWS] = value[vocab.cpu()].half().contiguous()
        else:
            tensors[key] = value.half().contiguous()
    if vocab is not None:
        tensors[IDS_KEY] = vocab.cpu().long().contiguous()
    metadata = {"idcbench": json.dumps({"format": FORMAT, "aliases": aliases, "vocab_size": vocab_size,
                                        "base_seed": BASE_SEED}, sort_keys=True)}
    with atomic_target(directory / WEIGHTS) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    write_atomic(directory / "config.json",
                 json.dumps({"family": "clip4idc", "config": dict(model.config, init=None)}, indent=2) + "\n")
    return directory / WEIGHTS


def load_compact(model: "Clip4IDC", path: str | Path) -> None:
    """Write the stored values of a compact file over `model` (built from the same config by `base_model`)."""
    tensors, meta = read_safetensors(path, what="compact checkpoint")
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not an idcbench compact CLIP4IDC checkpoint (format {meta.get('format')!r})")
    ids = tensors.pop(IDS_KEY, None)
    model.net.decoder.restrict_vocab(ids)
    state = model.net.state_dict()
    with torch.no_grad():
        for key, value in tensors.items():
            if key.endswith(ROWS):
                state[key[: -len(ROWS)]][ids] = value.to(state[key[: -len(ROWS)]].dtype)
            elif key not in state:
                raise UserError(f"{path}: tensor {key!r} is not part of this model (another config?)")
            else:
                state[key].copy_(value.to(state[key].dtype))


def base_for_load(directory: Path, config: dict) -> "Clip4IDC":
    """The model of a compact folder: its base, then the stored values."""
    model = base_model(config)
    load_compact(model, directory / WEIGHTS)
    model.net.eval()
    return model
