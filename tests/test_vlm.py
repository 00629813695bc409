"""`vlm` (transformers image-text-to-text) end to end on a tiny random Qwen2.5-VL built here, offline; the prompt and
post-processing data; run identity (weights revision, prompt, shots, rules in the spec hash).

Checked: `idcbench run vlm --config model=PATH --dataset shapes` captions, keeps each raw answer beside the scored
caption (= the rules applied to it), equals the model called directly at another batch size (left padding changes
nothing), and is reused; k-shot conversations hold k train pairs (their references as assistant turns) before the
test pair, never a test pair; missing weights are one line naming the repo id, revision and `hf download`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _small_shapes import small_shapes
from _cli import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

METRICS = "BLEU-4,CIDEr-D"


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    return small_shapes(tmp_path_factory, scenes=40)


def _run(capsys, root: Path, runs: Path, model: Path, *config: str, limit: int = 4, batch: int = 2):
    args = ["run", "vlm", "--config", f"model={model}", "--dataset", "shapes", "--data-root", root, "--runs-dir", runs,
            "--limit", limit, "--batch-size", batch, "--device", "cpu", "--metrics", METRICS]
    for item in config:
        args += ["--config", item]
    return run_cli(capsys, *args)


def _run_dir(runs: Path) -> Path:
    (d,) = [p for p in runs.glob("shapes/vlm/*") if p.is_dir()]
    return d


def test_run_vlm_end_to_end(tiny_vlm, shapes_root, tmp_path, capsys):
    from idcbench.data import load_dataset
    from idcbench.models.vlm.prompting import POSTPROCESS_VERSION, instruction_for, postprocess
    from idcbench.models.vlm.transformers_vlm import TransformersVLM
    from idcbench.models.vlm.weights import folder_fingerprint

    code, out, err = _run(capsys, shapes_root, tmp_path / "runs", tiny_vlm)
    assert code == 0, err
    run = _run_dir(tmp_path / "runs")
    preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    examples = load_dataset("shapes", shapes_root).examples("test")[:4]
    assert [p["id"] for p in preds] == [e.id for e in examples]
    assert all(p["raw"] and p["caption"] == postprocess(p["raw"]) for p in preds)
    # run identity: the weights' fingerprint, the dataset's instruction and the rules' version are pinned (hashed)
    config = json.loads((run / "run_spec.json").read_text())["spec"]["config"]
    assert config["weights_revision"] == folder_fingerprint(tiny_vlm)
    assert config["instruction"] == instruction_for("shapes")
    assert config["postprocess_version"] == POSTPROCESS_VERSION and config["max_new_tokens"] == 48
    assert not (run / "model" / "model.safetensors").exists()  # model/ holds the config, the weights stay put

    # the saved model, called directly one pair at a time: the same raw answers as the left-padded batches of 2
    model = TransformersVLM.load(run / "model").to("cpu")
    direct = [model.caption([e.pair])[0] for e in examples]
    assert [c.raw for c in direct] == [p["raw"] for p in preds]

    # the same command again: reused
    code, out, _ = _run(capsys, shapes_root, tmp_path / "runs", tiny_vlm)
    assert code == 0 and "reused" in out


def test_kshot_prompts_hold_train_pairs_only(tiny_vlm, shapes_root, tmp_path, capsys, monkeypatch):
    from idcbench.data import load_dataset
    from idcbench.models.vlm import transformers_vlm
    from idcbench.models.vlm.transformers_vlm import TransformersVLM

    seen: list[list[dict]] = []
    paths: list[str] = []
    answer = TransformersVLM.answer

    def recording_answer(self, conversations):
        seen.extend(conversations)
        return answer(self, conversations)

    def recording_part(path):
        paths.append(str(path))
        return transformers_vlm._pil_part(path)

    monkeypatch.setattr(TransformersVLM, "answer", recording_answer)
    monkeypatch.setattr(TransformersVLM, "image_part", staticmethod(recording_part))
    code, _, err = _run(capsys, shapes_root, tmp_path / "runs", tiny_vlm, "shots=3", "shot_seed=1", limit=2)
    assert code == 0, err
    ds = load_dataset("shapes", shapes_root)
    train = {e.id: e for e in ds.examples("train")}
    test_images = {str(p) for e in ds.examples("test") for p in (e.before, e.after)}
    shots = json.loads((_run_dir(tmp_path / "runs") / "run_spec.json").read_text())["spec"]["config"]["shot_examples"]
    assert len(shots) == 3 and all(s["id"] in train and s["caption"] in train[s["id"]].references for s in shots)
    shot_images = [str(p) for s in shots for p in (train[s["id"]].before, train[s["id"]].after)]
    assert len(seen) == 2  # one conversation per test pair
    for i, conv in enumerate(seen):
        assert [m["role"] for m in conv] == ["user", "assistant"] * 3 + ["user"]
        assert [m["content"][0]["text"] for m in conv[1::2]] == [s["caption"] for s in shots]
        images = paths[i * 8:(i + 1) * 8]  # 3 shots + the test pair, 2 images each, in order
        assert images[:6] == shot_images and not set(images[:6]) & test_images
        assert set(images[6:]) <= test_images
    # rendered by the model's own chat template: each shot's reference is an assistant turn, then the open turn
    from transformers import AutoProcessor

    text = AutoProcessor.from_pretrained(tiny_vlm).apply_chat_template(seen[0], add_generation_prompt=True)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 8
    for s in shots:
        assert f"<|im_start|>assistant\n{s['caption']}<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_identity_changes_the_run(tiny_vlm, shapes_root, tmp_path):
    from idcbench.models.vlm.transformers_vlm import TransformersVLM
    from idcbench.run import RunRequest
    from idcbench.run.request import prepare

    def spec_hash(**config):
        req = RunRequest("vlm", "shapes", data_root=shapes_root, config={"model": str(tiny_vlm), **config},
                         limit=2, device="cpu", runs_dir=tmp_path)
        return prepare(req).spec.hash

    base = spec_hash()
    assert spec_hash() == base
    variants = [spec_hash(instruction="Say what changed."), spec_hash(shots=1), spec_hash(postprocess=False),
                spec_hash(max_new_tokens=20)]
    assert len({base, *variants}) == 5
    # other weights (one file changed): another revision, another run
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in tiny_vlm.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    same = RunRequest("vlm", "shapes", data_root=shapes_root, config={"model": str(copy)}, limit=2, device="cpu")
    rev = prepare(same).spec.config["weights_revision"]
    cfg = json.loads((copy / "config.json").read_text())
    cfg["text_config"]["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(cfg))
    assert prepare(same).spec.config["weights_revision"] != rev
    # a model pinned to the old revision refuses the changed weights before generating anything
    pinned = TransformersVLM({"model": str(copy), "weights_revision": rev, "instruction": "x"})
    from idcbench.data import load_dataset
    from idcbench.errors import UserError

    with pytest.raises(UserError, match="weights changed since this run was set up"):
        pinned.caption([load_dataset("shapes", shapes_root).examples("test")[0].pair])


def test_missing_weights_is_one_line(shapes_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code, out, err = run_cli(capsys, "run", "qwen2.5-vl-3b", "--dataset", "shapes", "--data-root", shapes_root,
                             "--runs-dir", tmp_path / "runs", "--device", "cpu")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err
    assert "Qwen/Qwen2.5-VL-3B-Instruct (revision main)" in line
    assert "hf download Qwen/Qwen2.5-VL-3B-Instruct --revision main" in line
    assert not (tmp_path / "runs").exists()  # raised before any work
    code, _, err = run_cli(capsys, "run", "vlm", "--dataset", "shapes", "--data-root", shapes_root,
                           "--runs-dir", tmp_path / "runs", "--device", "cpu")
    assert code == 2 and "--config model=" in err


def test_variant_configs_name_transformers_architectures():
    """Every variant's model type is one that AutoModelForImageTextToText builds (checked without weights)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    from idcbench.models.vlm import CONFIG_DIR
    from idcbench.registry import MODELS

    variants = [json.loads(p.read_text()) | {"name": p.stem} for p in sorted(CONFIG_DIR.glob("*.json"))]
    checked = [v for v in variants if v["family"] == "vlm" and v["config"].get("model")]
    assert {v["model_type"] for v in checked} == {"qwen2_5_vl", "qwen3_vl", "smolvlm", "llava_onevision",
                                                 "internvl", "gemma3"}
    for v in checked:
        assert v["model_type"] in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES, v["name"]
        assert MODELS.get(v["name"]).create().config["model"] == v["config"]["model"]
