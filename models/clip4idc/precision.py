"""`precision: "official-fp16"`: the official code's half-precision CLIP, for reproducing an official GPU run exactly.

The official code calls OpenAI CLIP's ``convert_weights`` on the CLIP model (never on the decoder): every Conv and
Linear weight and bias, each attention's ``in_proj_weight`` / ``in_proj_bias`` (and separate q/k/v projections or
``bias_k`` / ``bias_v`` where a model has them), and the ``proj`` / ``text_projection`` matrices become float16 tensors,
in place; embeddings, LayerNorms, ``logit_scale``, the pair encoder's new parameters and the decoder stay float32.
There is no autocast and no float32 master copy: BertAdam updates the float16 tensors in place with float16 moments,
so at lr x coef_lr = 1e-7 most updates round away and most of those weights never change (the official code moves about
3 % of one attention weight's elements in a step, float32 about 97 %). The idcbench default (float32 weights, bf16
autocast on CUDA) trains all of them.

>>> import torch, open_clip, idcbench.models.tinyclip
>>> from idcbench.models.clip4idc.model import Clip4IDCNet
>>> net = Clip4IDCNet(open_clip.create_model("idc-tiny-vit"), decoder={"heads": 4, "ffn": 64, "layers": 1})
>>> cast = convert_official_fp16(net.clip)
>>> "visual.transformer.resblocks.0.attn.in_proj_weight" in cast, net.clip.visual.proj.dtype, net.clip.visual.ln_mid.weight.dtype
(True, torch.float16, torch.float32)
"""

from __future__ import annotations

import torch
from torch import nn

PRECISIONS = ("fp32", "official-fp16")
_MHA_ATTRS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v")


def official_fp16_names(clip: nn.Module) -> list[str]:
    """Names (as in ``clip.named_parameters()``) of the tensors the official ``convert_weights`` casts."""
    names = []
    for prefix, module in clip.named_modules():
        attrs: tuple[str, ...] = ()
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            attrs = ("weight", "bias")
        elif isinstance(module, nn.MultiheadAttention):
            attrs = _MHA_ATTRS
        attrs += ("text_projection", "proj")
        for attr in attrs:
            value = getattr(module, attr, None)
            if isinstance(value, nn.Parameter):
                names.append(f"{prefix}.{attr}" if prefix else attr)
    return sorted(set(names))


def convert_official_fp16(clip: nn.Module) -> list[str]:
    """Cast `official_fp16_names(clip)` to float16 in place (the Parameter objects stay; their data is replaced).
    Returns the cast names."""
    names = official_fp16_names(clip)
    params = dict(clip.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        for name in names:
            params[name].data = params[name].data.half()
    return names


def weight_dtype(clip: nn.Module) -> torch.dtype:
    """The dtype CLIP's transformer computes in (float16 after `convert_official_fp16`, else float32)."""
    return clip.visual.conv1.weight.dtype
