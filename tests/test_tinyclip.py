"""The miniature pretrained CLIP: weights format, shipped weights and their record, pretraining data and loop, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import open_clip
import pytest
import torch

import idcbench.models.tinyclip as tiny
from idcbench.files import file_sha256
from idcbench.datasets.shapes import SceneObject, describe_object, render_scene, sample_scene
from idcbench.errors import UserError
from idcbench.models.tinyclip import checkpoint, data
from idcbench.models.tinyclip.evaluate import CHANCE, evaluate
from idcbench.models.tinyclip.pretrain import PretrainConfig, lr_at, new_model, pretrain, train

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads(tiny.record_path().read_text())


@pytest.fixture(scope="module")
def shipped_eval(record) -> dict:
    settings = record["eval"]["pretrained"]["settings"]
    return evaluate(tiny.create_tiny_clip(), seed=settings["seed"], views=settings["views"], n_scenes=settings["scenes"])


def test_config_and_tokenizer():
    assert tiny.MODEL_NAME in open_clip.list_models()
    model = tiny.create_tiny_clip(pretrained=None)
    assert model.visual.image_size == (64, 64) and model.context_length == 32
    tokens = tiny.tokenizer()(["a small red metal cube"])
    assert tokens.shape == (1, 32)
    assert tokens[0, 0] == tiny.tokenizer().sot_token_id and tiny.tokenizer().eot_token_id in tokens[0].tolist()


def test_compact_format_stores_only_changed_rows(tmp_path):
    model = new_model(seed=3)
    rows = [320, 736, 4044]
    with torch.no_grad():
        model.token_embedding.weight[rows] += 0.5
    path = checkpoint.save_compact(model, tmp_path / "w.safetensors")
    from safetensors.torch import load_file

    assert load_file(str(path))[checkpoint.IDS_KEY].tolist() == rows
    state = checkpoint.load_compact(path)
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value.half().float()), key  # everything fp16, nothing else lost
    assert path.stat().st_size < 5_000_000
    # byte-identical on rewrite: the shipped file is deterministic
    again = checkpoint.save_compact(model, tmp_path / "w2.safetensors")
    assert again.read_bytes() == path.read_bytes()


def test_base_embedding_is_frozen_normal_init():
    base = checkpoint.base_token_embedding(49408, 128)
    assert base.shape == (49408, 128) and torch.equal(base, checkpoint.base_token_embedding(49408, 128))
    assert abs(float(base.std()) - 0.02) < 2e-4 and abs(float(base.mean())) < 2e-4
    expected = np.random.RandomState(checkpoint.BASE_SEED).standard_normal((2, 128)) * 0.02
    assert torch.equal(base[:2], torch.from_numpy(expected.astype(np.float16)).float())


def test_training_changes_only_rows_of_tokens_it_saw():
    cfg = PretrainConfig(steps=2, batch_size=8, warmup_steps=1, seed=5)
    model = train(cfg, threads=2)
    seen = set()
    for step in range(cfg.steps):
        _, texts = data.training_batch(cfg.seed, step, cfg.batch_size, twins=cfg.twins)
        seen |= set(tiny.tokenizer()(texts).flatten().tolist())
    changed = set(checkpoint.changed_token_ids(model.token_embedding.weight).tolist())
    assert changed and changed <= seen  # untouched rows stay bit-identical to the frozen init
    # same seed, same weights
    again = train(cfg, threads=2)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_lr_schedule_warmup_then_cosine():
    cfg = PretrainConfig(steps=101, lr=2.0, warmup_steps=4, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(cfg.steps)]
    assert lrs[:4] == [0.5, 1.0, 1.5, 2.0]
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] == pytest.approx(0.2)
    assert lrs[4 + 48] == pytest.approx(0.2 + 0.9 * (1 + np.cos(np.pi * 48 / 96)))


def test_batches_deterministic_true_and_disjoint_from_dataset_seeds():
    images, texts = data.training_batch(seed=0, step=4, batch_size=12)
    images2, texts2 = data.training_batch(seed=0, step=4, batch_size=12)
    assert np.array_equal(images, images2) and texts == texts2
    other, _ = data.training_batch(seed=0, step=5, batch_size=12)
    assert not np.array_equal(images, other)
    # the thread and process pipelines give the same batches
    threaded = list(data.batches(0, 12, 6, start=4, workers=1))
    assert np.array_equal(threaded[0][0], images) and threaded[0][1] == texts and len(threaded) == 2
    # the training stream is not the plain-seed stream the demo dataset draws from
    rng = data.stream_rng(0, data.TRAIN_STREAM, 4)
    assert sample_scene(rng, 3) != sample_scene(np.random.default_rng(0), 3)


def test_twin_changes_one_attribute_and_captions_are_true():
    rng = np.random.default_rng(11)
    for _ in range(50):
        scene = sample_scene(rng)
        other, i = data.twin(scene, rng)
        diffs = [a for a in ("shape", "color", "size", "material")
                 if getattr(scene.objects[i], a) != getattr(other.objects[i], a)]
        assert len(diffs) == 1 and all(a == b for j, (a, b) in enumerate(zip(scene.objects, other.objects)) if j != i)
        caption = data.random_caption(scene, rng)
        phrases = {describe_object(o) for o in scene.objects} | {o.phrase() for o in scene.objects}
        for part in caption.split(", "):
            words = part.split()
            if part in phrases:
                continue
            # a partial phrase: some attributes of one object, in CLEVR order, noun = shape or "object"
            assert words[0] == "a" and any(
                all(w in (o.size, o.color, o.material, o.shape, "object") for w in words[1:]) for o in scene.objects), part
    assert len(tiny.tokenizer().encode(data.scene_text([SceneObject("cylinder", "purple", "large", "rubber", (0, 0))] * 6))) <= 30


def test_to_tensor_equals_open_clip_transform():
    image = render_scene(sample_scene(np.random.default_rng(2)), 64)
    expected = tiny.image_transform()(image).unsqueeze(0)
    assert torch.allclose(data.to_tensor(np.asarray(image)[None]), expected, atol=1e-6)


def test_shipped_weights_file_and_record(record):
    path = tiny.weights_path()
    assert path.stat().st_size <= 5_000_000 and record["bytes"] == path.stat().st_size
    assert record["sha256"] == file_sha256(path)
    assert record["command"].startswith("idcbench pretrain-clip --dataset shapes")
    assert f"--steps {record['config']['steps']}" in record["command"] and f"--seed {record['config']['seed']}" in record["command"]
    assert record["model"] == tiny.MODEL_NAME and record["tag"] == tiny.PRETRAINED_TAG


def test_shipped_weights_reproduce_their_record(record, shipped_eval):
    stated = record["eval"]["pretrained"]
    for style in ("ensemble", "simple"):
        for attribute, value in stated["zero_shot"][style].items():
            assert shipped_eval["zero_shot"][style][attribute] == pytest.approx(value, abs=0.02), (style, attribute)
    for direction, value in stated["retrieval_r1"].items():
        assert shipped_eval["retrieval_r1"][direction] == pytest.approx(value, abs=0.02), direction


def test_shipped_weights_well_above_chance_and_random_init(record, shipped_eval):
    for attribute, value in shipped_eval["zero_shot"]["simple"].items():
        assert value >= CHANCE[attribute] + 0.15, attribute
    assert shipped_eval["zero_shot"]["ensemble"]["color"] >= 0.9
    assert min(shipped_eval["retrieval_r1"].values()) >= 0.5  # chance: 1 / 256
    scratch = record["eval"]["random_init"]
    assert max(scratch["retrieval_r1"].values()) < 0.05
    assert all(abs(v - CHANCE[a]) < 0.1 for a, v in scratch["zero_shot"]["simple"].items())


def test_open_clip_tag_loads_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("IDCBENCH_CACHE", str(tmp_path))
    assert (tiny.MODEL_NAME, tiny.PRETRAINED_TAG) in open_clip.list_pretrained()
    via_open_clip = open_clip.create_model(tiny.MODEL_NAME, pretrained=tiny.PRETRAINED_TAG)
    ours = tiny.create_tiny_clip()
    assert all(torch.equal(a, b) for a, b in zip(via_open_clip.state_dict().values(), ours.state_dict().values()))
    assert list((tmp_path / "tinyclip").glob("*.full.safetensors"))
    # the path route other adapters use: a file open_clip's own loader reads
    by_path = open_clip.create_model(tiny.MODEL_NAME, pretrained=str(tiny.pretrained_path()))
    assert all(torch.equal(a, b) for a, b in zip(by_path.state_dict().values(), ours.state_dict().values()))


def test_missing_or_bad_weights_are_user_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(tiny, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(UserError, match="idcbench pretrain-clip"):
        tiny.weights_path()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="bad.safetensors"):
        tiny.create_tiny_clip(pretrained=bad)
    with pytest.raises(UserError, match="unknown pretrained"):
        tiny.create_tiny_clip(pretrained="laion2b")


def test_pretrain_writes_loadable_weights_and_record(tmp_path):
    cfg = PretrainConfig(steps=2, batch_size=8, warmup_steps=1)
    rec = pretrain(cfg, tmp_path, command="idcbench pretrain-clip ...", eval_views=1, eval_scenes=8)
    saved = json.loads((tmp_path / tiny.RECORD_FILE).read_text())
    assert saved == rec and rec["config"]["steps"] == 2 and rec["sha256"] == file_sha256(tmp_path / tiny.WEIGHTS_FILE)
    loaded = tiny.create_tiny_clip(pretrained=tmp_path / tiny.WEIGHTS_FILE)
    assert evaluate(loaded, views=1, n_scenes=8)["zero_shot"] == rec["eval"]["pretrained"]["zero_shot"]


def test_cli_rejects_unknown_dataset(tmp_path):
    out = subprocess.run([sys.executable, "-m", "idcbench", "pretrain-clip", "--dataset", "clevr-change", "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "only 'shapes'" in out.stderr and out.stderr.strip().count("\n") == 0
