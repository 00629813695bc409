"""duda: trains on a shapes-like set, beats most-frequent, saves/reloads identically, resumes exactly."""

from __future__ import annotations

import pytest
import torch
from pycocoevalcap.cider.cider import Cider

from idcbench.captioner import FitContext
from idcbench.factory import create_model
from idcbench.models.baselines.duda import DUDA, DUDANet, add_coords
from idcbench.models.baselines.text import tokenize
from idcbench.registry import MODELS

from _baselines_toy import make_toy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return make_toy(root, 200, seed=0), make_toy(root, 20, seed=2, start=2000), make_toy(root, 40, seed=1, start=1000)


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    train, val, _ = data
    model = create_model("duda-tiny", pretrained=None, epochs=10)  # random backbone: independent of shipped weights
    logs = []
    model.fit(train, val, FitContext(workdir=tmp_path_factory.mktemp("wd"), on_progress=lambda *a: logs.append(a)))
    return model, logs


def cider(examples, captions):
    gts = {e.id: [" ".join(tokenize(r)) for r in e.references] for e in examples}
    res = {e.id: [" ".join(tokenize(c))] for e, c in zip(examples, captions)}
    return Cider().compute_score(gts, res)[0]


def test_paper_variant_sizes():
    cfg = MODELS.get("duda").config
    assert (cfg["backbone"], cfg["grid_layer"], cfg["hidden"], cfg["word_dim"], cfg["embed_dim"]) == ("RN101", 3, 512, 300, 512)
    net = DUDANet(1024, 80, {**DUDA().config, **cfg})
    x = torch.randn(2, 1024, 14, 14)
    logits, alphas, a_bef, a_aft = net(x, x + 1, torch.randint(4, 80, (2, 7)))
    assert logits.shape == (2, 6, 80) and alphas.shape == (2, 6, 3) and a_bef.shape == (2, 1, 14, 14)
    assert torch.allclose(alphas.sum(-1), torch.ones(2, 6))
    assert net.dual.embed[0].in_channels == 2 * 1026  # [X ; X_diff] with two coordinate channels each


def test_dual_attention_equations():
    torch.manual_seed(0)
    net = DUDANet(6, 10, {**DUDA().config, "att_dim": 8}).eval()
    xb, xa = torch.randn(3, 6, 4, 4), torch.randn(3, 6, 4, 4)
    feats, a_bef, a_aft = net.encode(xb, xa)
    xb2, xa2 = add_coords(xb), add_coords(xa)
    l_bef, l_aft = (xb2 * a_bef).sum((2, 3)), (xa2 * a_aft).sum((2, 3))
    manual = torch.sigmoid(net.dual.att(net.dual.embed(torch.cat([xb2, xa2 - xb2], 1))))
    assert torch.allclose(a_bef, manual)
    assert torch.allclose(feats, torch.stack([l_bef, l_aft - l_bef, l_aft], 1), atol=1e-6)


def test_trains_and_beats_most_frequent(data, fitted):
    train, _, test = data
    model, logs = fitted
    assert {s for s, *_ in logs} >= {"features", "train", "epoch"}
    assert len(model.history) == 10 and "val_cider_d" in model.history[0]
    assert model.history[-1]["loss"] < model.history[0]["loss"]
    mf = create_model("most-frequent")
    mf.fit(train, [], None)
    assert cider(test, model.caption(test)) > cider(test, mf.caption(test))


def test_save_load_identical(data, fitted, tmp_path):
    _, _, test = data
    model, _ = fitted
    caps = model.caption(test)
    model.save(tmp_path / "duda")
    again = DUDA.load(tmp_path / "duda")
    assert again.caption(test) == caps
    assert again.caption([e.pair for e in test[:5]]) == caps[:5]


def test_resume_equals_uninterrupted(tmp_path):
    train, val = make_toy(tmp_path / "d", 12, seed=5), make_toy(tmp_path / "d", 3, seed=6, start=50)
    cfg = dict(pretrained=None, batch_size=8, hidden=32, embed_dim=32, word_dim=16, att_dim=8)
    a = create_model("duda-tiny", **cfg, epochs=2)
    a.fit(train, val, FitContext(workdir=tmp_path / "a"))
    a = create_model("duda-tiny", **cfg, epochs=3)
    a.fit(train, val, FitContext(workdir=tmp_path / "a"))  # continues at epoch 3
    b = create_model("duda-tiny", **cfg, epochs=3)
    b.fit(train, val, FitContext(workdir=tmp_path / "b"))
    assert a.history == b.history and len(a.history) == 3
    for (k, va), (_, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert torch.equal(va, vb), k


def test_early_stop_keeps_the_best_epoch_logs_the_curve_and_stays_stopped(data, tmp_path):
    import json

    train, val, _ = data
    kw = dict(pretrained=None, epochs=30, early_stop=1, lr=3e-2)  # a high lr: val stops improving early
    model = create_model("duda-tiny", **kw)
    model.fit(train, val, FitContext(workdir=tmp_path))
    scores = [h["val_cider_d"] for h in model.history]
    best = scores.index(max(scores))
    assert len(scores) < 30 and len(scores) == best + 3  # stopped once 2 epochs in a row failed to beat the best
    rows = [json.loads(line) for line in (tmp_path / "val_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, len(scores) + 1))
    assert [r["val"] for r in rows] == [round(s, 4) for s in scores] and rows[-1]["metric"] == "CIDEr-D"
    again = create_model("duda-tiny", **kw)
    again.fit(train, val, FitContext(workdir=tmp_path))  # a finished fit does not train further
    assert len(again.history) == len(scores)
    assert all(torch.equal(a, b) for a, b in zip(model.net.state_dict().values(), again.net.state_dict().values()))
