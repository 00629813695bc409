"""The CLIP4IDC network: an open_clip CLIP whose visual tower encodes image PAIRS, plus the caption decoder.

Parameter names equal the official code's (`clip.*` = OpenAI/open_clip CLIP names, the pair encoder's new parameters
under `clip.visual.*`, `decoder.*`), so an official state dict loads with `load_state_dict(strict=True)`.

`arch="pair"` is CLIP4IDC (joint encoding: `intra_layers` blocks per image, then the rest over both images).
`arch="diff"` is the "conventional" `clip-diff` ablation: the visual tower runs on each image separately (frozen by
default) and the decoder reads the tokens of before, after and after - before, each plus a type embedding.

>>> import torch, open_clip, idcbench.models.tinyclip
>>> clip = open_clip.create_model("idc-tiny-vit")
>>> net = Clip4IDCNet(clip, decoder={"heads": 4, "ffn": 256, "layers": 1}).eval()
>>> tokens = net.encode_pair(torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64))
>>> tokens.shape, net.tokens_per_image
(torch.Size([2, 130, 128]), 65)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from idcbench.models.clip4idc.decoder import DecoderModel

PAIR_PARAMS = ("joint_positional_embedding", "bef_embedding", "aft_embedding", "ln_mid")


class Clip4IDCNet(nn.Module):
    def __init__(self, clip: nn.Module, *, arch: str = "pair", intra_layers: int | None = None,
                 decoder: dict[str, Any] | None = None, freeze_visual: bool = True):
        super().__init__()
        if arch not in ("pair", "diff"):
            raise ValueError(f"arch must be 'pair' or 'diff', not {arch!r}")
        visual = getattr(clip, "visual", None)
        if visual is None or not hasattr(visual, "conv1") or getattr(visual, "attn_pool", None) is not None \
                or not hasattr(clip, "token_embedding"):
            raise ValueError("CLIP4IDC needs an open_clip ViT with the standard CLIP text tower (e.g. ViT-B-32)")
        self.clip = clip
        self.arch = arch
        width = visual.conv1.out_channels
        layers = len(visual.transformer.resblocks)
        self.tokens_per_image = visual.grid_size[0] * visual.grid_size[1] + 1
        embed_dim = visual.proj.shape[1]
        scale = width ** -0.5
        if arch == "pair":
            self.intra_layers = layers * 3 // 4 if intra_layers is None else int(intra_layers)
            if not 0 < self.intra_layers <= layers:
                raise ValueError(f"intra_layers must be in 1..{layers}, got {self.intra_layers}")
            visual.joint_positional_embedding = nn.Parameter(scale * torch.randn(2 * self.tokens_per_image, width))
            visual.bef_embedding = nn.Parameter(scale * torch.randn(width))
            visual.aft_embedding = nn.Parameter(scale * torch.randn(width))
            visual.ln_mid = type(visual.ln_pre)(width)
        else:
            self.intra_layers = layers
            self.diff_type_embedding = nn.Parameter(embed_dim ** -0.5 * torch.randn(3, embed_dim))
            self.freeze_visual = freeze_visual
            if freeze_visual:
                for p in visual.parameters():
                    p.requires_grad_(False)
        self.decoder: DecoderModel | None = None
        if decoder is not None:
            self.add_decoder(**decoder)

    def add_decoder(self, heads: int = 8, ffn: int = 2048, layers: int = 3, dropout: float = 0.1) -> None:
        word, pos = self.clip.token_embedding.weight, self.clip.positional_embedding
        embed_dim = self.clip.visual.proj.shape[1]
        if word.shape[1] != embed_dim:
            raise ValueError(f"the decoder is tied to the text embeddings (width {word.shape[1]}) and reads pair "
                             f"tokens of width {embed_dim}: they must be equal")
        self.decoder = DecoderModel(word, pos, heads=heads, ffn=ffn, layers=layers, dropout=dropout)

    # ---- visual -----------------------------------------------------------------------------------------------
    def _stem(self, images: torch.Tensor) -> torch.Tensor:
        v = self.clip.visual
        x = v.conv1(images.to(v.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(x)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        v = self.clip.visual
        return v.ln_post(x) @ v.proj

    def encode_pair(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """Pair tokens B x (2T or 3T) x embed_dim, what the decoder reads."""
        if self.arch == "diff":
            return self.encode_diff(before, after)
        b = before.shape[0]
        x = self.encode_intra(torch.cat([before, after]))
        return self.encode_joint(x[:b], x[b:])

    def encode_intra(self, images: torch.Tensor) -> torch.Tensor:
        """Each image alone through the stem and the first `intra_layers` blocks: N x T x width."""
        x = self._stem(images)
        for blk in self.clip.visual.transformer.resblocks[: self.intra_layers]:
            x = blk(x)
        return x

    def intra_parameters(self) -> list[nn.Parameter]:
        """What `encode_intra` computes with: the stem (conv1, class / positional embeddings, ln_pre) and the intra
        blocks. When none of them trains, their outputs can be cached."""
        v = self.clip.visual
        modules = (v.conv1, v.ln_pre, *v.transformer.resblocks[: self.intra_layers])
        return [v.class_embedding, v.positional_embedding, *(p for m in modules for p in m.parameters())]

    def encode_joint(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """Intra outputs of the two images -> before/after embeddings, joint positions, ln_mid, joint blocks, proj."""
        v = self.clip.visual
        x = torch.cat([before + v.bef_embedding.to(before.dtype), after + v.aft_embedding.to(after.dtype)], dim=1)
        x = v.ln_mid(x + v.joint_positional_embedding.to(x.dtype))
        for blk in v.transformer.resblocks[self.intra_layers:]:
            x = blk(x)
        return self._project(x)

    def encode_diff(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        b = before.shape[0]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_visual):
            x = self._stem(torch.cat([before, after]))
            for blk in self.clip.visual.transformer.resblocks:
                x = blk(x)
            x = self._project(x)
        bef, aft = x[:b], x[b:]
        t = self.diff_type_embedding.to(x.dtype)
        return torch.cat([bef + t[0], aft + t[1], (aft - bef) + t[2]], dim=1)

    def pair_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """Retrieval embedding: mean of the projected CLS tokens of the before and the after image."""
        return (tokens[:, 0] + tokens[:, self.tokens_per_image]) / 2

    # ---- text -------------------------------------------------------------------------------------------------
    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Projected hidden state at <eot> (the highest id), causal mask.

        The ids are cut after the batch's last <eot>: under the causal mask no position attends to a later one, so
        the padding after every row's <eot> cannot change its hidden state (the official code pads to 32). CPU ids
        are cut before they are copied to the model's device (no wait for the device)."""
        c = self.clip
        ids = ids[:, : int(ids.argmax(dim=-1).max()) + 1] if ids.numel() else ids
        ids = ids.to(c.token_embedding.weight.device, non_blocking=True)
        n = ids.shape[1]
        x = c.token_embedding(ids) + c.positional_embedding[:n].to(c.token_embedding.weight.dtype)
        x = x.to(c.visual.conv1.weight.dtype)  # float16 under precision "official-fp16", else a no-op
        mask = torch.full((n, n), float("-inf"), device=ids.device).triu_(1)
        x = c.ln_final(c.transformer(x, attn_mask=mask))
        x = x[torch.arange(x.shape[0], device=ids.device), ids.argmax(dim=-1)]
        proj = c.text_projection
        return proj(x) if isinstance(proj, nn.Module) else x @ proj

    def similarity(self, pair_emb: torch.Tensor, text_emb: torch.Tensor, scale: float) -> torch.Tensor:
        """scale * cosine, texts x pairs (the official `retrieve_logits`)."""
        return scale * F.normalize(text_emb.float(), dim=-1) @ F.normalize(pair_emb.float(), dim=-1).t()
