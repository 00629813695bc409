"""CLIP4IDC on the tiny backbone (random init, generated `shapes` scenes): decoding, training, hand-over, save/load,
resumption."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _cli import run_cli

from idcbench.captioner import FitContext
from idcbench.factory import create_model

FAST = {"pretrained": None, "eval_batch_size": 16, "decoding": {"max_len": 12}}


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    from idcbench.datasets import shapes
    from idcbench.datasets.clevr_change import CLEVRChange

    root = shapes.synthesize(tmp_path_factory.mktemp("shapes") / "data", scenes=20, size=64, seed=0)
    ds = CLEVRChange.load(root)
    return ds.examples("train"), ds.examples("val")


def tiny(**overrides):
    torch.manual_seed(0)
    return create_model("clip4idc-tiny", **{**FAST, **overrides})


@pytest.mark.parametrize("restrict", [False, True])
def test_kv_cache_greedy_equals_full_recompute_at_every_step(shapes_data, restrict):
    from idcbench.models.clip4idc.decoder import greedy_decode, greedy_decode_official

    train, _ = shapes_data
    m = tiny()
    dec = m.net.decoder
    torch.nn.init.normal_(dec.classifier.cls.predictions.bias, std=1.0)  # a random model that does not stop at once
    if restrict:
        m.prepare_stage(2, train)
    with torch.no_grad():
        before, after = m.images.pairs([e.pair for e in train[:4]])
        tokens = m.net.encode_pair(before, after)
        cached = greedy_decode(dec, tokens, sot=m.bpe.sot, eot=m.bpe.eot, max_len=32, early_stop=False)
        full = greedy_decode_official(dec, tokens, sot=m.bpe.sot, max_len=32)
        assert torch.equal(cached, full)
        # the logits of every step agree too, not only their argmax
        cache = dec.start(tokens)
        prefix = torch.cat([torch.full((4, 1), m.bpe.sot), full[:, :-1]], dim=1)
        logits_full = dec(prefix, tokens, torch.ones_like(prefix))
        for t in range(prefix.shape[1]):
            step = dec.step(prefix[:, t: t + 1], cache)
            torch.testing.assert_close(step, logits_full[:, t], rtol=1e-4, atol=1e-4)
        early = greedy_decode(dec, tokens, sot=m.bpe.sot, eot=m.bpe.eot, max_len=32)
    decode = m.bpe.decode_official
    assert [decode(r.tolist()) for r in early] == [decode(r.tolist()) for r in full]


def _steps(m, stage, batch, n, train, lr):
    from idcbench.models.clip4idc.optim import BertAdam, param_groups
    from idcbench.models.clip4idc.train import StageRunner

    runner = StageRunner(m, stage, FitContext(workdir=Path("unused")), train, [])
    m.begin_stage(stage)
    m.prepare_stage(stage, runner.train)
    opt = BertAdam(param_groups(m.net, stage=stage, lr=lr, coef_lr=1.0, weight_decay=0.01), lr=lr, t_total=-1)
    m.net.train()
    losses = []
    for _ in range(n):
        loss = runner.loss_stage1(batch) if stage == 1 else runner.loss_stage2(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_loss_goes_down_in_a_few_steps(shapes_data):
    from idcbench.models.clip4idc import pairs as P

    train, _ = shapes_data
    m = tiny()
    s1 = _steps(m, 1, P.stage1_plan(P.stage1_samples(train), seed=0, epoch=0)[:8], 3, train, 1e-5)
    s2 = _steps(m, 2, P.stage2_plan(train, seed=0, epoch=0)[:4], 3, train, 1e-3)
    assert s1[-1] < s1[0] and s2[-1] < s2[0], (s1, s2)


def test_stage1_to_stage2_hand_over_keeps_the_encoder(shapes_data, tmp_path):
    train, val = shapes_data
    m = tiny(stage1={"max_steps": 2, "batch_size": 8, "lr": 1e-3, "coef_lr": 1.0, "val_max_pairs": 4},
             stage2={"max_steps": 2, "batch_size": 4, "coef_lr": 0.0, "val_max_pairs": 4})
    initial = {k: v.clone() for k, v in m.net.clip.state_dict().items()}
    m.fit(train, val, FitContext(workdir=tmp_path, seed=0))
    after_stage1 = torch.load(tmp_path / "stage1_best.pt", weights_only=True)
    final = m.net.state_dict()
    changed = [k for k in initial if not torch.equal(initial[k], after_stage1[f"clip.{k}"])]
    assert "visual.ln_mid.weight" in changed and "visual.transformer.resblocks.5.attn.in_proj_weight" in changed
    for k in initial:  # stage 2 starts from (and, with coef_lr 0, keeps) the stage-1 encoder
        assert torch.equal(final[f"clip.{k}"], after_stage1[f"clip.{k}"]), k
    assert (tmp_path / "stage2_done").exists()


def test_save_and_reload_caption_identically(shapes_data, tmp_path):
    from idcbench.models.clip4idc.captioner import Clip4IDC

    train, val = shapes_data
    m = tiny(stages=[2], stage2={"max_steps": 3, "batch_size": 4, "val_max_pairs": 2})
    m.fit(train, val, FitContext(workdir=tmp_path / "work", seed=0))
    m.save(tmp_path / "model")
    again = Clip4IDC.load(tmp_path / "model")
    pairs = [e.pair for e in val]
    assert m.caption(pairs) == again.caption(pairs)
    assert torch.equal(m.caption_ids(pairs), again.caption_ids(pairs))
    via_init = tiny(init=str(tmp_path / "model" / "model.pt"))  # an idcbench model.pt works as --init too
    assert via_init.caption(pairs) == m.caption(pairs) and via_init.stages_to_run() == [2]


class _Killed(Exception):
    pass


def test_killed_fit_resumes_to_the_same_weights(shapes_data, tmp_path):
    train, val = shapes_data
    train = [e for e in train if int(e.tags["scene"]) % 2 == 0]  # fewer scenes: 3 fits of both stages
    cfg = dict(stages=[1, 2], save_every_steps=1,
               stage1={"epochs": 2, "batch_size": 16, "coef_lr": 1.0, "val_max_pairs": 2},
               stage2={"epochs": 2, "batch_size": 4, "coef_lr": 0.0, "val_max_pairs": 2},
               decoder={"heads": 4, "ffn": 64, "layers": 1, "dropout": 0.1})  # dropout on: RNG state must resume
    whole = tiny(**cfg)
    whole.fit(train, val, FitContext(workdir=tmp_path / "a", seed=3))

    def kill_at(stage, step):
        def hook(s, k, total, logs):
            if s == stage and k == step:
                raise _Killed
        return hook

    for stage, step in (("stage1", 2), ("stage2", 3)):
        with pytest.raises(_Killed):
            tiny(**cfg).fit(train, val, FitContext(workdir=tmp_path / "b", seed=3, on_progress=kill_at(stage, step)))
    resumed = tiny(**cfg)
    resumed.fit(train, val, FitContext(workdir=tmp_path / "b", seed=3))
    a, b = whole.net.state_dict(), resumed.net.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_caption_command_prints_the_models_caption(shapes_data, tmp_path, capsys):
    _, val = shapes_data
    m = tiny()
    m.save(tmp_path / "model")
    want = m.caption([val[0].pair])[0]
    for argv in (["caption", tmp_path / "model", val[0].before, val[0].after],
                 ["caption", "clip4idc-tiny", "--init", tmp_path / "model" / "model.pt", "--pretrained", "none",
                  "-c", 'decoding={"max_len": 12}', val[0].before, val[0].after]):
        code, out, _ = run_cli(capsys, *argv)
        assert code == 0
        assert out.strip() == want
    code, _, err = run_cli(capsys, "caption", "clip4idc-tiny", "--init", tmp_path / "missing.bin", val[0].before,
                           val[0].after)
    assert code == 2 and "missing.bin: file not found" in err


def test_logit_scale_null_is_the_backbones_learned_temperature(shapes_data):
    from idcbench.models.clip4idc import pairs as P
    from idcbench.models.clip4idc.train import StageRunner

    train, _ = shapes_data
    batch = P.stage1_plan(P.stage1_samples(train), seed=0, epoch=0)[:8]
    losses = {}
    for scale in (None, 100.0):
        m = tiny(logit_scale=scale)
        with torch.no_grad():
            m.net.clip.logit_scale.fill_(2.0)  # exp(2) = 7.39, far from 100
            losses[scale] = StageRunner(m, 1, FitContext(workdir=Path("unused")), train, []).loss_stage1(batch)
    m = tiny(logit_scale=float(torch.tensor(2.0).exp()))
    with torch.no_grad():
        m.net.clip.logit_scale.fill_(2.0)
        want = StageRunner(m, 1, FitContext(workdir=Path("unused")), train, []).loss_stage1(batch)
    assert torch.equal(losses[None], want) and not torch.allclose(losses[None], losses[100.0])


def test_embedding_coef_lr_trains_the_tied_embeddings_while_clip_stays_frozen(shapes_data, tmp_path):
    from idcbench.models.clip4idc.optim import param_groups

    train, val = shapes_data
    m = tiny(stages=[2], train_token_embedding=True,
             stage2={"max_steps": 2, "batch_size": 4, "coef_lr": 0.0, "embedding_coef_lr": 1.0, "val_max_pairs": 2})
    m.begin_stage(2)
    groups = param_groups(m.net, stage=2, lr=1e-3, coef_lr=0.0, weight_decay=0.01, embedding_coef_lr=0.5)
    emb = m.net.clip.token_embedding.weight
    assert [g["lr"] for g in groups if any(p is emb for p in g["params"])] == [5e-4]
    assert sum(any(p is emb for p in g["params"]) for g in groups) == 1
    before = {k: v.clone() for k, v in m.net.clip.state_dict().items()}
    m.fit(train, val, FitContext(workdir=tmp_path, seed=0))
    after = m.net.clip.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"token_embedding.weight"}, changed


def test_train_token_embedding_applies_to_stage_2_only(shapes_data, tmp_path):
    """The official code keeps the token embedding frozen in stage 1 and unfreezes it in stage 2 on Spot-the-Diff."""
    train, val = shapes_data
    m = tiny(stages=[1, 2], train_token_embedding=True,
             stage1={"max_steps": 2, "batch_size": 4, "coef_lr": 1.0, "val_max_pairs": 4},
             stage2={"max_steps": 2, "batch_size": 4, "coef_lr": 1.0, "val_max_pairs": 2})
    emb = m.net.clip.token_embedding.weight
    snapshots = {"init": emb.detach().clone()}
    for stage in (1, 2):
        m.config["stages"] = [stage]
        m.fit(train, val, FitContext(workdir=tmp_path / f"s{stage}", seed=0))
        snapshots[stage] = emb.detach().clone()
    assert torch.equal(snapshots["init"], snapshots[1])      # stage 1: frozen, as the official quirk
    assert not torch.equal(snapshots[1], snapshots[2])        # stage 2: trained
