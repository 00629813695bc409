"""Official CLIP4IDC checkpoints (spec section 6): every tensor of a stage-1 / stage-2 state dict lands where it belongs.

The expected names are built independently of idcbench's model: OpenAI CLIP's ViT-B/32 names (open_clip uses the same),
the pair encoder's five new tensors and the decoder names enumerated in the spec.
"""

from __future__ import annotations

import pytest
import torch

from idcbench.errors import UserError

W, D, V, CTX, FFN = 768, 512, 49408, 77, 2048


def official_names() -> dict[str, tuple[int, ...]]:
    import open_clip

    with torch.device("meta"):  # names and shapes only
        clip = open_clip.model.CLIP(**open_clip.get_model_config("ViT-B-32"))
    names = {f"clip.{k}": tuple(v.shape) for k, v in clip.state_dict().items()}
    assert len(names) == 302
    names.update({"clip.visual.joint_positional_embedding": (100, W), "clip.visual.bef_embedding": (W,),
                  "clip.visual.aft_embedding": (W,), "clip.visual.ln_mid.weight": (W,), "clip.visual.ln_mid.bias": (W,)})
    return names


def decoder_names() -> dict[str, tuple[int, ...]]:
    out = {"decoder.embeddings.word_embeddings.weight": (V, D), "decoder.embeddings.position_embeddings.weight": (CTX, D),
           "decoder.embeddings.LayerNorm.weight": (D,), "decoder.embeddings.LayerNorm.bias": (D,),
           "decoder.classifier.cls.predictions.transform.dense.weight": (D, D),
           "decoder.classifier.cls.predictions.transform.dense.bias": (D,),
           "decoder.classifier.cls.predictions.transform.LayerNorm.weight": (D,),
           "decoder.classifier.cls.predictions.transform.LayerNorm.bias": (D,),
           "decoder.classifier.cls.predictions.decoder.weight": (V, D), "decoder.classifier.cls.predictions.bias": (V,)}

    def attention(prefix):
        for part in ("query", "key", "value", "output.dense"):
            p = f"{prefix}.{part}" if part == "output.dense" else f"{prefix}.att.{part}"
            out[f"{p}.weight"], out[f"{p}.bias"] = (D, D), (D,)
        out[f"{prefix}.output.LayerNorm.weight"] = out[f"{prefix}.output.LayerNorm.bias"] = (D,)

    for side in ("encoder", "decoder"):
        for layer in range(3):
            base = f"decoder.{side}.layer.{layer}"
            attention(f"{base}.slf_attn")
            if side == "decoder":
                attention(f"{base}.enc_attn")
            out[f"{base}.intermediate.dense.weight"], out[f"{base}.intermediate.dense.bias"] = (FFN, D), (FFN,)
            out[f"{base}.output.dense.weight"], out[f"{base}.output.dense.bias"] = (D, FFN), (D,)
            out[f"{base}.output.LayerNorm.weight"] = out[f"{base}.output.LayerNorm.bias"] = (D,)
    return out


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    tied = {"decoder.embeddings.word_embeddings.weight": "clip.token_embedding.weight",
            "decoder.classifier.cls.predictions.decoder.weight": "clip.token_embedding.weight",
            "decoder.embeddings.position_embeddings.weight": "clip.positional_embedding"}
    for copy, src in tied.items():
        if copy in state:
            state[copy] = state[src]  # one tensor in the real files
    return state


@pytest.fixture(scope="module")
def names():
    stage1 = official_names()
    return stage1, {**stage1, **decoder_names()}


@pytest.fixture(scope="module")
def model():
    from idcbench.factory import create_model

    torch.manual_seed(0)
    return create_model("clip4idc", pretrained=None, decoding={"max_len": 3}, eval_batch_size=1)


def test_counts_match_the_spec(names, model):
    stage1, stage2 = names
    assert len(stage1) == 307 and len(stage2) == 443
    ours = model.net.state_dict()  # the model holds exactly the official tensors: stage 1's, then the decoder's
    assert len(ours) == 443 and len([k for k in ours if not k.startswith("decoder.")]) == 307


def test_stage2_checkpoint_lands_everywhere_and_captions(names, model, tmp_path):
    from PIL import Image

    from idcbench.data import Pair

    _, stage2 = names
    state = random_state(stage2, seed=1)
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    assert model.load_checkpoint(path) == "stage2"
    got = model.net.state_dict()
    assert set(got) == set(stage2)
    for name, value in state.items():
        assert torch.equal(got[name], value), name
    assert model.stages_to_run() == [2]
    for side in ("b", "a"):
        Image.fromarray(torch.randint(0, 255, (50, 70, 3), dtype=torch.uint8).numpy()).save(tmp_path / f"{side}.png")
    caption = model.caption([Pair(tmp_path / "b.png", tmp_path / "a.png")])
    assert isinstance(caption[0], str) and len(model.caption_ids([Pair(tmp_path / "b.png", tmp_path / "a.png")])[0]) == 3


def test_stage1_checkpoint_fills_clip_and_keeps_the_decoder(names, model, tmp_path):
    stage1, _ = names
    state = random_state(stage1, seed=2)
    torch.save(state, tmp_path / "pytorch_model.bin.clevr")
    fresh_decoder = {k: v.clone() for k, v in model.net.decoder.state_dict().items()}
    assert model.load_checkpoint(tmp_path / "pytorch_model.bin.clevr") == "stage1"
    got = model.net.state_dict()
    for name, value in state.items():
        assert torch.equal(got[name], value), name
    for name, value in fresh_decoder.items():  # the decoder's own tensors are untouched (tied ones are CLIP's)
        if name not in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                        "classifier.cls.predictions.decoder.weight"):
            assert torch.equal(got[f"decoder.{name}"], value), name


def test_missing_and_unexpected_names_are_errors(names, model, tmp_path):
    stage1, _ = names
    state = random_state(stage1, seed=3)
    del state["clip.visual.ln_mid.bias"]
    state["clip.visual.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.bin")
    with pytest.raises(UserError, match=r"1 missing \(clip.visual.ln_mid.bias\); 1 unexpected \(clip.visual.extra\)"):
        model.load_checkpoint(tmp_path / "bad.bin")


def test_freeze_official_freezes_exactly_the_quirks_list():
    """conv1, class / positional embeddings, ln_pre and the text embeddings; never the pair encoder's new parameters."""
    import open_clip

    import idcbench.models.tinyclip  # noqa: F401  (registers idc-tiny-vit)
    from idcbench.models.clip4idc.model import Clip4IDCNet
    from idcbench.models.clip4idc.optim import freeze_official

    quirk = {"positional_embedding", "visual.class_embedding", "visual.positional_embedding", "visual.conv1.weight",
             "visual.ln_pre.weight", "visual.ln_pre.bias"}
    net = Clip4IDCNet(open_clip.create_model("idc-tiny-vit"))
    assert set(freeze_official(net)) == quirk | {"token_embedding.weight"}
    assert {n for n, p in net.clip.named_parameters() if not p.requires_grad} == quirk | {"token_embedding.weight"}
    spot = Clip4IDCNet(open_clip.create_model("idc-tiny-vit"))
    assert set(freeze_official(spot, train_token_embedding=True)) == quirk
