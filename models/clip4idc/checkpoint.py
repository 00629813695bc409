"""Load official CLIP4IDC checkpoints (`pytorch_model.bin.*`: plain state dicts of the whole model).

Stage-1 files hold `clip.*` (CLIP + the pair encoder's new parameters, 307 tensors for ViT-B/32); stage-2 files also
hold `decoder.*` (443 tensors). Every missing or unexpected name is an error, never silently skipped.

>>> is_stage2({"clip.logit_scale": 0, "decoder.classifier.cls.predictions.bias": 0})
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from idcbench.errors import UserError

# Tied copies of CLIP's text embeddings inside the decoder (official names): they must equal their source.
TIED = {
    "decoder.embeddings.word_embeddings.weight": "clip.token_embedding.weight",
    "decoder.classifier.cls.predictions.decoder.weight": "clip.token_embedding.weight",
    "decoder.embeddings.position_embeddings.weight": "clip.positional_embedding",
}


def is_stage2(state: Mapping[str, object]) -> bool:
    return any(k.startswith("decoder.") for k in state)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict file (official `pytorch_model.bin.*`, a `.pt`/`.bin`, or safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--init {path}: file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any unreadable file is the user's to fix)
        raise UserError(f"--init {path}: cannot read a PyTorch state dict ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--init {path}: not a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _names(keys, limit: int = 5) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_official(net: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> str:
    """Load an official-format state dict into `net` (a `Clip4IDCNet` with a decoder). Returns "stage1" / "stage2".

    A stage-1 dict fills everything but the decoder (which keeps its fresh initialisation, as the official stage 2 does);
    a stage-2 dict fills everything. Missing / unexpected names, shape mismatches and tied copies that differ from
    their CLIP source raise `UserError`.
    """
    stage2 = is_stage2(state)
    if "decoder.vocab_ids" in state and net.decoder is not None:  # an idcbench model with a restricted vocabulary
        net.decoder.restrict_vocab(state["decoder.vocab_ids"])
    own = net.state_dict()
    expected = {k for k in own if stage2 or not k.startswith("decoder.")}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_names(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
        raise UserError(f"{source}: not a CLIP4IDC {'stage-2' if stage2 else 'stage-1'} state dict for this backbone: "
                        f"{'; '.join(parts)}; check --backbone / intra layers, or pass an idcbench model directory")
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        k = sorted(wrong)[0]
        raise UserError(f"{source}: {len(wrong)} tensors have the wrong shape, e.g. {k}: {tuple(state[k].shape)} "
                        f"in the file, {tuple(own[k].shape)} in the model; check --backbone")
    for copy, src in TIED.items():
        if copy in state and not torch.equal(state[copy].float(), state[src].float()):
            raise UserError(f"{source}: {copy} differs from {src}, but the two are tied in CLIP4IDC")
    # Tied copies last-write-wins in load_state_dict: drop them so the CLIP source is what lands.
    clean = {k: v for k, v in state.items() if k not in TIED}
    result = net.load_state_dict(clean, strict=False)
    leftover = set(result.missing_keys) - set(TIED) - {k for k in own if k.startswith("decoder.") and not stage2}
    if leftover or result.unexpected_keys:
        raise UserError(f"{source}: could not place {_names(leftover | set(result.unexpected_keys))}")
    return "stage2" if stage2 else "stage1"
