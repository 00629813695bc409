"""nearest-neighbour: returns training captions chosen by consensus, reloads identically, beats most-frequent."""

from __future__ import annotations

import pytest
import torch
from pycocoevalcap.cider.cider import Cider

from idcbench.factory import create_model
from idcbench.models.baselines.nearest_neighbour import NearestNeighbour
from idcbench.models.baselines.text import consensus_choice, document_frequency, tokenize
from idcbench.registry import MODELS

from _baselines_toy import make_toy


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return make_toy(root, 150, seed=0), make_toy(root, 30, seed=1, start=1000)


@pytest.fixture(scope="module")
def fitted(data):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = create_model("nearest-neighbour-tiny", pretrained=None)  # random backbone: independent of shipped weights
    model.fit(data[0], [], None)
    yield model
    torch.set_num_threads(threads)


def cider(examples, captions):
    gts = {e.id: [" ".join(tokenize(r)) for r in e.references] for e in examples}
    res = {e.id: [" ".join(tokenize(c))] for e, c in zip(examples, captions)}
    return Cider().compute_score(gts, res)[0]


def test_aliases_registered():
    assert MODELS.get("nearest-neighbor") is MODELS.get("nearest-neighbour")
    assert MODELS.get("nearest-neighbour").config["backbone"] == "ViT-B-32"


def test_captions_are_training_captions_chosen_by_consensus(data, fitted):
    train, test = data
    caps = fitted.caption(test)
    pool = {r for e in train for r in e.references}
    assert all(c in pool for c in caps)
    # brute force: rank all training pairs by cosine similarity, then consensus over their captions
    q = fitted.pair_embeddings(test[:6])
    sims = q @ fitted.embeddings.T
    df, ref_len = document_frequency([[tokenize(r) for r in e.references] for e in train])
    for row, cap in zip(sims, caps[:6]):
        nbrs = sorted(range(len(train)), key=lambda j: (-float(row[j]), j))[: fitted.config["k"]]
        cands = [r for j in nbrs for r in train[j].references]
        assert cap == cands[consensus_choice(cands, df, ref_len)]


def test_beats_most_frequent_and_reloads_identically(data, fitted, tmp_path):
    train, test = data
    caps = fitted.caption(test)
    mf = create_model("most-frequent")
    mf.fit(train, [], None)
    assert cider(test, caps) > cider(test, mf.caption(test))
    fitted.save(tmp_path / "nn")
    again = NearestNeighbour.load(tmp_path / "nn")
    assert again.caption(test) == caps
    assert again.caption([e.pair for e in test[:4]]) == caps[:4]


def test_patch_features_variant(data):
    train, test = data
    m = create_model("nearest-neighbour-tiny", pretrained=None, features="patch", grid_pool=4, k=3)
    m.fit(train[:40], [], None)
    assert len(m.pair_embeddings(test[:2])[0]) == 3 * 128 * 4 * 4
    assert all(c in {r for e in train[:40] for r in e.references} for c in m.caption(test[:4]))


def test_tiny_variant_uses_shipped_weights_when_present():
    from idcbench.models.baselines.features import tiny_weights_available

    model = create_model("nearest-neighbour-tiny")
    assert model.extractor().is_random == (not tiny_weights_available())
    assert model.extractor().image_size == 64


def test_load_refuses_other_backbone_weights(fitted, tmp_path):
    from idcbench.errors import UserError

    fitted.save(tmp_path / "nn")
    state = torch.load(tmp_path / "nn" / "backbone.pt", weights_only=True)
    state["visual.conv1.weight"] = state["visual.conv1.weight"] + 1.0
    torch.save(state, tmp_path / "nn" / "backbone.pt")
    with pytest.raises(UserError, match="backbone weights"):
        NearestNeighbour.load(tmp_path / "nn")


def test_missing_weights_name_the_config_key_every_command_takes(tmp_path, capsys, monkeypatch):
    """`idcbench run` has no --pretrained option: the advice is the config key, as `run` and `caption` spell it."""
    import json

    from PIL import Image

    from _cli import run_cli

    monkeypatch.setenv("IDCBENCH_CLIP_CACHE", str(tmp_path / "clip-cache"))  # nothing cached: the weights are missing
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    rows = [{"before": "a.png", "after": "a.png", "captions": ["no change"], "split": s} for s in ("train", "test")]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run_cli(capsys, "run", "nearest-neighbour", "--dataset", "pairs:pairs.jsonl",
                           "--data-root", tmp_path, "--config", "backbone=ViT-B-32", "--config", "pretrained=openai",
                           "--runs-dir", tmp_path / "runs")
    assert code == 2 and "idcbench never downloads" in err
    assert "--config pretrained=/path/to/weights.pt" in err and "--pretrained /path" not in err
