"""precision "official-fp16": exactly the tensors of the official `convert_weights` become float16, and training runs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from idcbench.captioner import FitContext
from idcbench.factory import create_model
from idcbench.models.clip4idc.precision import convert_official_fp16

# What OpenAI CLIP's convert_weights casts, written from its rules for the names of a CLIP ViT (not from our code):
# conv1 (no bias), every attention's in_proj_weight / in_proj_bias, every Linear (attention out_proj, MLP c_fc / c_proj)
# weight and bias, and the visual `proj` and `text_projection` matrices.
CAST = re.compile(r"(visual\.conv1\.weight|(visual\.)?transformer\.resblocks\.\d+\.attn\.(in_proj_weight|in_proj_bias"
                  r"|out_proj\.weight|out_proj\.bias)|(visual\.)?transformer\.resblocks\.\d+\.mlp\.c_(fc|proj)\.(weight|bias)"
                  r"|visual\.proj|text_projection)")


def _vit_b32_net():
    import open_clip

    from idcbench.models.clip4idc.model import Clip4IDCNet

    with torch.device("meta"):  # names, shapes and dtypes only
        clip = open_clip.model.CLIP(**open_clip.get_model_config("ViT-B-32"))
        return Clip4IDCNet(clip, decoder={})


def test_casts_exactly_the_official_convert_weights_set():
    net = _vit_b32_net()
    cast = convert_official_fp16(net.clip)
    names = {n for n, _ in net.clip.named_parameters()}
    expected = {n for n in names if CAST.fullmatch(n)}
    assert len(expected) == 1 + 12 * 8 * 2 + 2  # conv1, 8 tensors per block in both towers, proj, text_projection
    assert set(cast) == expected
    for name, p in net.named_parameters(remove_duplicate=False):
        inside = name.startswith("clip.") and name.removeprefix("clip.") in expected
        assert p.dtype == (torch.float16 if inside else torch.float32), name
    # nothing of the decoder, the LayerNorms, the embeddings or the pair parameters
    for name in ("clip.visual.ln_mid.weight", "clip.visual.joint_positional_embedding", "clip.visual.bef_embedding",
                 "clip.visual.ln_post.weight", "clip.ln_final.bias", "clip.token_embedding.weight", "clip.logit_scale",
                 "decoder.decoder.layer.0.slf_attn.att.query.weight", "decoder.classifier.cls.predictions.bias"):
        assert dict(net.named_parameters())[name].dtype == torch.float32, name


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    from idcbench.datasets import shapes
    from idcbench.datasets.clevr_change import CLEVRChange

    root = shapes.synthesize(tmp_path_factory.mktemp("shapes") / "data", scenes=12, size=64, seed=0)
    return CLEVRChange.load(root).examples("train")


@pytest.mark.parametrize("stage", [1, 2])
def test_official_fp16_trains_a_tiny_model_with_finite_losses(shapes_data, stage):
    from idcbench.models.clip4idc import pairs as P
    from idcbench.models.clip4idc.optim import BertAdam, param_groups
    from idcbench.models.clip4idc.train import StageRunner

    torch.manual_seed(0)
    m = create_model("clip4idc-tiny", pretrained=None, precision="official-fp16", eval_batch_size=8,
                     decoding={"max_len": 6})
    assert m.config["amp"] is False  # no autocast
    half = {n for n, p in m.net.named_parameters() if p.dtype == torch.float16}
    assert "clip.visual.transformer.resblocks.0.attn.in_proj_weight" in half
    runner = StageRunner(m, stage, FitContext(workdir=Path("unused")), shapes_data, [])
    m.begin_stage(stage)
    m.prepare_stage(stage, runner.train)
    # the official lrs: 1e-4 for the new parameters, 1e-4 x coef_lr 1e-3 for CLIP
    opt = BertAdam(param_groups(m.net, stage=stage, lr=1e-4, coef_lr=1e-3, weight_decay=0.01), lr=1e-4, t_total=-1)
    plan = P.stage1_plan(P.stage1_samples(runner.train), seed=0, epoch=0) if stage == 1 else \
        P.stage2_plan(runner.train, seed=0, epoch=0)
    batch = plan[:8]
    w = m.net.clip.visual.transformer.resblocks[-1].attn.in_proj_weight
    w0 = w.detach().clone()
    m.net.train()
    losses = []
    for _ in range(3):
        loss = runner.loss_stage1(batch) if stage == 1 else runner.loss_stage2(batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses), losses
    # BertAdam updated the float16 tensors in place, with float16 moments
    assert w.dtype == torch.float16 and opt.state[w]["next_m"].dtype == torch.float16
    assert {n for n, p in m.net.named_parameters() if p.dtype == torch.float16} == half
    moved = (w != w0).float().mean().item()
    assert moved < 0.5, moved  # at lr 1e-7 most float16 updates round away (float32 moves nearly every element)
    m.net.eval()
    assert len(m.caption([e.pair for e in shapes_data[:2]])) == 2
