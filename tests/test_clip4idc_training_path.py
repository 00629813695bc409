"""The CLIP4IDC training step's data path and arithmetic on the CPU: step images come through the worker pipeline and
the weights end bit-identical to the in-process reference (also after a kill and a resume); the foreach BertAdam and
the sync-free caption loss compute exactly what the per-tensor loop and the boolean-mask loss computed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn.utils import clip_grad_norm_

from idcbench.captioner import FitContext
from idcbench.factory import create_model

STEPS = dict(  # the visual tower trains in both stages: every step reads its images
    pretrained=None, eval_batch_size=16, decoding={"max_len": 8}, cache_images=False,
    decoder={"heads": 4, "ffn": 64, "layers": 1, "dropout": 0.1},  # dropout: the RNG must be consumed as before
    stage1={"epochs": 2, "batch_size": 12, "freeze_intra": False, "coef_lr": 1.0, "val_max_pairs": 4},
    stage2={"epochs": 2, "batch_size": 4, "coef_lr": 0.1, "val_max_pairs": 4},
)


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    from idcbench.datasets import shapes
    from idcbench.datasets.clevr_change import CLEVRChange

    root = shapes.synthesize(tmp_path_factory.mktemp("shapes") / "data", scenes=10, size=64, seed=0)
    ds = CLEVRChange.load(root)
    return ds.examples("train"), ds.examples("val")


def reference_images(paths, size=64) -> torch.Tensor:
    """The in-process path before the pipeline: PIL RGB, bicubic resize, float / 255, CLIP mean / std."""
    from idcbench.models.clip4idc.pairs import CLIP_MEAN, CLIP_STD

    rows = []
    for p in paths:
        with Image.open(p) as img:
            rows.append(torch.from_numpy(np.array(img.convert("RGB").resize((size, size), Image.BICUBIC))).permute(2, 0, 1))
    x = torch.stack(rows).float().div_(255.0)
    return (x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)


def tiny(**over):
    torch.manual_seed(0)
    return create_model("clip4idc-tiny", **{**STEPS, **over})


@pytest.fixture(scope="module")
def piped(shapes_data, tmp_path_factory):
    """A fit whose step images come from 2 worker processes, and the processes that decoded images."""
    import idcbench.images as images

    train, val = shapes_data
    decode, log = images.decode_resized, tmp_path_factory.mktemp("pids") / "pids"

    def logged(path, size, *, out=None):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return decode(path, size, out=out)

    images.decode_resized = logged
    try:
        m = tiny(loader_workers=2)
        m.fit(train, val, FitContext(workdir=tmp_path_factory.mktemp("piped"), seed=1))
    finally:
        images.decode_resized = decode
    return m, set(map(int, log.read_text().split()))


def test_steps_read_images_through_workers_with_the_reference_weights(shapes_data, piped, tmp_path, monkeypatch):
    train, val = shapes_data
    piped, pids = piped
    assert pids - {os.getpid()}, "no image was decoded in a worker process"

    ref = tiny()
    net = ref.net

    def old_path(befores, afters, images=None):  # what pair_tokens_for_training did before (no cache is active)
        assert images is None and ref.needs_step_images()
        return net.encode_pair(reference_images(befores), reference_images(afters))

    ref.pair_tokens_for_training = old_path
    from idcbench.models.clip4idc import train as T

    monkeypatch.setattr(T.StageRunner, "step_images", lambda self, *a: iter(lambda: None, 0))
    ref.fit(train, val, FitContext(workdir=tmp_path / "ref", seed=1))
    a, b = piped.net.state_dict(), ref.net.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    pairs = [e.pair for e in val]
    assert piped.caption(pairs) == ref.caption(pairs)


class _Killed(Exception):
    pass


def test_a_killed_fit_with_workers_resumes_to_the_same_weights(shapes_data, piped, tmp_path):
    train, val = shapes_data
    whole, _ = piped
    cfg = dict(loader_workers=2, save_every_steps=2)  # stage 1 has 4 steps an epoch: resumed from the middle

    def kill_at(stage, step):
        def hook(s, k, total, logs):
            if s == stage and k == step:
                raise _Killed
        return hook

    for stage, step in (("stage1", 3), ("stage2", 2)):
        with pytest.raises(_Killed):
            tiny(**cfg).fit(train, val, FitContext(workdir=tmp_path / "b", seed=1, on_progress=kill_at(stage, step)))
    resumed = tiny(**cfg)
    resumed.fit(train, val, FitContext(workdir=tmp_path / "b", seed=1))
    a, b = whole.net.state_dict(), resumed.net.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


@torch.no_grad()
def per_tensor_step(opt) -> None:
    """BertAdam.step as the official per-tensor loop."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            state = opt.state[p]
            if not state:
                state.update(step=0, next_m=torch.zeros_like(p), next_v=torch.zeros_like(p))
            if group["max_grad_norm"] > 0:
                clip_grad_norm_(p, group["max_grad_norm"])
            m, v = state["next_m"], state["next_v"]
            m.mul_(group["b1"]).add_(p.grad, alpha=1 - group["b1"])
            v.mul_(group["b2"]).addcmul_(p.grad, p.grad, value=1 - group["b2"])
            update = m / (v.sqrt() + group["e"])
            if group["weight_decay"] > 0.0:
                update += group["weight_decay"] * p
            p.add_(update, alpha=-opt.scheduled_lr(group, state["step"]))
            state["step"] += 1


def test_bertadam_on_lists_equals_the_per_tensor_loop():
    from idcbench.models.clip4idc.optim import BertAdam

    g = torch.Generator().manual_seed(0)
    shapes = [(64, 33), (7,), (128, 128), (3, 5, 2), (1,), (500,)]
    for trial in range(12):
        a = [torch.nn.Parameter(torch.randn(s, generator=g) * 10.0 ** (trial % 5 - 3)) for s in shapes]
        b = [torch.nn.Parameter(x.detach().clone()) for x in a]

        def make(ps):
            return BertAdam([{"params": ps[:3], "weight_decay": 0.01}, {"params": ps[3:], "weight_decay": 0.0, "lr": 3e-3}],
                            lr=1e-3, t_total=20, schedule="warmup_cosine", max_grad_norm=(1.0, 0.5, 0.0)[trial % 3])

        ref, new = make(a), make(b)
        for step in range(6):
            for i, (x, y) in enumerate(zip(a, b)):
                if (step + i + trial) % 5 == 0:  # some parameters get no gradient: their step counts diverge
                    x.grad = y.grad = None
                    continue
                grad = torch.randn(x.shape, generator=g) * 10.0 ** (step % 7 - 5)
                x.grad, y.grad = grad.clone(), grad.clone()
            per_tensor_step(ref)
            new.step()
            for x, y in zip(a, b):
                assert torch.equal(x, y), (trial, step)
                if ref.state[x]:
                    assert ref.state[x]["step"] == new.state[y]["step"]
                    assert torch.equal(ref.state[x]["next_m"], new.state[y]["next_m"])
                    assert torch.equal(ref.state[x]["next_v"], new.state[y]["next_v"])


def test_caption_loss_equals_the_boolean_mask_loss_and_its_gradients(shapes_data):
    import torch.nn.functional as F

    from idcbench.models.clip4idc import pairs as P
    from idcbench.models.clip4idc.train import StageRunner

    train, _ = shapes_data
    triples = [u.sem for u in P.stage2_plan(train, seed=0, epoch=0)[:5]]
    losses, grads = [], []
    for new in (True, False):
        m = tiny(restrict_vocab=True)
        m.prepare_stage(2, train)
        m.net.train()
        torch.manual_seed(5)  # the same dropout masks
        if new:
            loss = StageRunner(m, 2, FitContext(workdir=Path("unused")), train, []).caption_loss(triples)
        else:  # the loss before: the kept positions by a boolean mask on the device
            tokens = m.pair_tokens_for_training([t[0] for t in triples], [t[1] for t in triples])
            inp, tgt, mask = m.bpe.caption_ids([t[2] for t in triples], m.config["max_words"])
            n = max(1, int(mask.sum(dim=1).max()))
            inp, tgt, mask = (t[:, :n] for t in (inp, tgt, mask))
            dec = m.net.decoder
            hidden = dec.hidden(inp, dec.encode(tokens), mask)
            keep = tgt != 0
            loss = F.cross_entropy(dec.classify(hidden[keep]).float(), dec.to_index(tgt[keep]), ignore_index=-100)
        loss.backward()
        losses.append(loss.detach())
        grads.append({k: p.grad.clone() for k, p in m.net.named_parameters() if p.grad is not None})
    assert torch.equal(losses[0], losses[1])
    assert grads[0].keys() == grads[1].keys() and all(torch.equal(grads[0][k], grads[1][k]) for k in grads[0])


def test_token_rows_made_once_equal_the_tokenizers_batches():
    from idcbench.models.clip4idc.train import StageRunner

    m = tiny()
    runner = StageRunner(m, 2, FitContext(workdir=Path("unused")), [], [])
    texts = ["the red cube moved", "a small thing", "the red cube moved", "", "x " * 40]
    for kind, make in (("text", m.bpe.text_ids), ("caption", m.bpe.caption_ids)):
        for batch in (texts, texts[2:], texts[::-1]):  # the second and third batches reuse stored rows
            want = make(batch, m.config["max_words"])
            want = (want,) if isinstance(want, torch.Tensor) else want
            got = runner._token_rows(kind, batch)
            assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))
