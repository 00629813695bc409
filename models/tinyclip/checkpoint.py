"""The compact weights format of the miniature CLIP: fp16, and only the token-embedding rows that training changed.

The CLIP BPE token embedding (49408 x 128) alone would be 12.6 MB in fp16, yet pretraining on `shapes` descriptions
touches a few dozen tokens. So training starts the token embedding from a *deterministic* init,
`base_token_embedding()` (legacy NumPy `RandomState`, whose stream is frozen, normal with std 0.02 like open_clip's
own init), and the file stores every other tensor in full plus only the rows that differ from that init, with their
ids. Loading rebuilds the rest of the table from the same init. AdamW leaves rows of tokens that never occur
bit-identical (zero gradient, no weight decay on the embedding), so the loaded model equals the trained one.

File layout (safetensors, every float tensor fp16):
  <every state-dict key except token_embedding.weight>
  token_embedding.ids    int64 [K], sorted token ids whose rows are stored
  token_embedding.rows   fp16 [K, width]
  metadata: {"idcbench": JSON of format, vocab_size, width, base_seed}

>>> import tempfile, idcbench.models.tinyclip as t
>>> m = t.create_tiny_clip(pretrained=None)
>>> _ = m.token_embedding.weight.data.copy_(base_token_embedding(49408, 128))
>>> m.token_embedding.weight.data[[320, 736]] += 1.0  # as if training had changed two tokens
>>> path = save_compact(m, tempfile.mkdtemp() + "/w.safetensors")
>>> load_file(path)[IDS_KEY].tolist()
[320, 736]
>>> load_compact(path)[EMBED_KEY].equal(m.token_embedding.weight.data.half().float())
True
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from idcbench.errors import UserError
from idcbench.files import atomic_target, file_sha256, read_safetensors

FORMAT = "idcbench.tinyclip.compact/1"
BASE_SEED = 20240607  # seed of the frozen token-embedding init; part of the format, never change it
EMBED_KEY = "token_embedding.weight"
IDS_KEY = "token_embedding.ids"
ROWS_KEY = "token_embedding.rows"


@lru_cache(maxsize=4)
def _base_fp16(vocab_size: int, width: int) -> torch.Tensor:
    rows = np.random.RandomState(BASE_SEED).standard_normal((vocab_size, width)) * 0.02
    return torch.from_numpy(rows.astype(np.float16))


def base_token_embedding(vocab_size: int, width: int) -> torch.Tensor:
    """The deterministic fp32 init of the token embedding (fp16-representable, so fp16 storage is exact).

    >>> base_token_embedding(10, 4).dtype, base_token_embedding(10, 4).equal(base_token_embedding(10, 4))
    (torch.float32, True)
    """
    return _base_fp16(vocab_size, width).float()


def changed_token_ids(weight: torch.Tensor) -> torch.Tensor:
    """Ids of the token-embedding rows that differ (after fp16 rounding) from `base_token_embedding`."""
    base = _base_fp16(*weight.shape)
    return (weight.detach().cpu().half() != base).any(dim=1).nonzero().flatten()


def save_compact(model: torch.nn.Module, path: str | Path, *, extra_ids: torch.Tensor | None = None) -> Path:
    """Write `model`'s weights in the compact fp16 format (atomically). `extra_ids`: rows to store even if unchanged."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    weight = state.pop(EMBED_KEY)
    ids = changed_token_ids(weight)
    if extra_ids is not None:
        ids = torch.unique(torch.cat([ids, extra_ids.flatten().long().cpu()]))
    tensors = {k: v.half().contiguous() if v.is_floating_point() else v.contiguous() for k, v in state.items()}
    tensors[IDS_KEY] = ids.long().contiguous()
    tensors[ROWS_KEY] = weight[ids].half().contiguous()
    # one metadata key: safetensors writes several in hash-map order, which would make the file's bytes vary
    metadata = {"idcbench": json.dumps({"format": FORMAT, "vocab_size": weight.shape[0], "width": weight.shape[1],
                                        "base_seed": BASE_SEED}, sort_keys=True)}
    with atomic_target(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def load_compact(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a compact file into a full fp32 state dict for `open_clip.create_model(MODEL_NAME)`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: tiny CLIP weights not found")
    tensors, metadata = read_safetensors(path, what="safetensors file", fix="rerun `idcbench pretrain-clip`")
    if metadata.get("format") != FORMAT or IDS_KEY not in tensors or ROWS_KEY not in tensors:
        raise UserError(f"{path}: not an idcbench tiny CLIP weights file (format {metadata.get('format')!r}, "
                        f"expected {FORMAT!r})")
    ids, rows = tensors.pop(IDS_KEY), tensors.pop(ROWS_KEY)
    weight = base_token_embedding(int(metadata["vocab_size"]), int(metadata["width"])).clone()
    weight[ids] = rows.float()
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    state[EMBED_KEY] = weight
    return state


def materialize(compact: str | Path, cache: str | Path) -> Path:
    """A full-size checkpoint of `compact` that open_clip's own loader reads, cached under `cache` by content hash."""
    target = Path(cache) / f"{Path(compact).stem}-{file_sha256(compact)[:16]}.full.safetensors"
    if not target.is_file():
        state = {k: v.contiguous() for k, v in load_compact(compact).items()}
        with atomic_target(target) as tmp:
            save_file(state, tmp)
    return target
