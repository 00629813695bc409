"""`vlm` fine-tuning (LoRA and full) on a tiny random Qwen2.5-VL built here, offline, on the CPU.

Checked: only the caption and its end-of-turn token carry labels (every prompt, image and padding position is -100)
and the prompt tokens are the ones captioning renders; the summed loss equals transformers' own loss on the same
labels; the loss falls on a small split (LoRA and full); val selection keeps the best step and early stopping stops;
a fit killed after some steps and rerun ends with the same adapter, bit for bit; micro-batch size and world size
(torchrun, 2 processes, gloo) do not change the result beyond float summation order; `idcbench run ... finetune=lora`
saves a PEFT adapter that `--init` (run and caption) and a bare copy of it turn into exactly the run's captions; the
run spec hashes the recipe and the decoding keys; each shipped recipe variant puts LoRA where its description says,
on the real architecture (built on the meta device).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _small_shapes import small_shapes
from _cli import free_port, run_cli
from idcbench.errors import UserError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# LoRA's output head: the tiny model's random lm_head caps its logits near uniform, so adapters on the attention and
# MLP layers alone move its loss little; training the head too shows the loop learning in a few steps.
TINY_LORA = {"r": 8, "lora_alpha": 16, "modules_to_save": ["lm_head"]}


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    return small_shapes(tmp_path_factory, scenes=20)


@pytest.fixture(scope="module")
def dataset(shapes_root):
    from idcbench.data import load_dataset

    return load_dataset("shapes", shapes_root)


def _model(tiny_vlm: Path, dataset, finetune: str = "lora", lora: dict | None = None, micro: int = 4, **train):
    from idcbench.captioner import TrainData
    from idcbench.models.vlm.transformers_vlm import TransformersVLM

    config = {"model": str(tiny_vlm), "finetune": finetune, "max_new_tokens": 6, "micro_batch_size": micro,
              "lora": lora or TINY_LORA,
              "train": {"batch_size": 4, "lr": 1e-2, "warmup_ratio": 0, "val_max_pairs": 4, **train}}
    return TransformersVLM(TransformersVLM.resolve_config(config, TrainData.of(dataset)))


def _fit(model, dataset, workdir: Path, **ctx):
    from idcbench.captioner import FitContext

    model.fit(dataset.examples("train"), dataset.examples("val"), FitContext(workdir=workdir, **ctx))
    return model


def _trainable(model) -> dict:
    return {n: p.detach().clone() for n, p in model._model.named_parameters() if p.requires_grad}


def _log(workdir: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (workdir / name).read_text().splitlines()]


# ----------------------------------------------------------------------------------------------------- the labels
def test_only_the_caption_and_its_end_token_carry_labels(tiny_vlm, dataset):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from idcbench.models.vlm.collate import (
        IGNORE, caption_loss, completion_ids, end_token_ids, prompt_batch, training_batch,
    )
    from idcbench.models.vlm.transformers_vlm import TransformersVLM

    processor = AutoProcessor.from_pretrained(tiny_vlm)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    tok = processor.tokenizer
    vlm = TransformersVLM({"model": str(tiny_vlm), "instruction": "What changed?"})
    examples = dataset.examples("train")[:3]
    captions = ["the cube moved", "a large metal sphere was added to the scene", "no change"]
    prompts = vlm.conversations([e.pair for e in examples])
    ends = end_token_ids(model, tok)
    assert ends == {tok.convert_tokens_to_ids("<|im_end|>")}
    placeholder = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                {"type": "text", "text": "What changed?"}]}]
    completions = [completion_ids(processor, placeholder, c, ends, {}) for c in captions]
    batch, labels = training_batch(processor, prompts, completions, {}, tok.pad_token_id)

    # the prompt columns are exactly what captioning feeds the model (left padding included)
    prompt = prompt_batch(processor, prompts, {})
    width = prompt["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"][:, :width], prompt["input_ids"])
    assert torch.equal(batch["attention_mask"][:, :width], prompt["attention_mask"])
    assert torch.equal(batch["pixel_values"], prompt["pixel_values"])

    # over the whole sequence: a label only where the caption or its end-of-turn token is
    full = torch.cat([torch.full((len(captions), width), IGNORE), labels], dim=1)
    image_token = tok.convert_tokens_to_ids("<|image_pad|>")
    assert (batch["input_ids"] == image_token).sum() > 0
    assert (full[batch["input_ids"] == image_token] == IGNORE).all()
    assert (full[:, :width] == IGNORE).all() and (full[batch["attention_mask"] == 0] == IGNORE).all()
    for row, caption in zip(full, captions):
        kept = row[row != IGNORE].tolist()
        assert tok.decode(kept) == caption + "<|im_end|>"  # the newline the template writes after it: no label
        assert kept == tok(caption, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]

    # the loop's summed loss (logits of the completion positions only) = transformers' mean loss x label count
    with torch.no_grad():
        ours = caption_loss(model, batch, labels)
        reference = model(**batch, labels=full).loss * (full[:, 1:] != IGNORE).sum()
    assert torch.allclose(ours, reference, rtol=1e-5)


def test_a_template_whose_answer_is_not_the_prompts_continuation_is_refused(tiny_vlm):
    from transformers import AutoProcessor

    from idcbench.models.vlm.collate import completion_ids

    processor = AutoProcessor.from_pretrained(tiny_vlm)
    processor.chat_template = processor.chat_template.replace("<|im_start|>assistant\n{% endif %}",
                                                              "<|im_start|>assistant\nAnswer: {% endif %}")
    prompt = [{"role": "user", "content": [{"type": "text", "text": "What changed?"}]}]
    with pytest.raises(UserError, match="not a prefix"):
        completion_ids(processor, prompt, "the cube moved", {2}, {})


# ------------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_loss_falls_on_a_small_split(tiny_vlm, dataset, tmp_path, finetune):
    model = _fit(_model(tiny_vlm, dataset, finetune, max_steps=16, val_every_steps=8), dataset, tmp_path)
    losses = [row["loss"] for row in _log(tmp_path, "train_log.jsonl")]
    assert len(losses) == 16 and all(row["tokens"] > 0 for row in _log(tmp_path, "train_log.jsonl"))
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.5, losses  # from ~ln(vocab) = 5.9 down
    assert [row["step"] for row in _log(tmp_path, "val_log.jsonl")] == [8, 16]
    assert (tmp_path / "done").exists() and (tmp_path / "best.pt").exists()
    if finetune == "lora":
        names = list(_trainable(model))
        assert names and all("lora_" in n or "modules_to_save" in n for n in names)
        assert not any("visual" in n for n in names)  # the default recipe keeps the vision side frozen


def test_val_selection_keeps_the_best_step_and_early_stop_stops(tiny_vlm, dataset, tmp_path, monkeypatch):
    from idcbench.models.vlm import finetune

    scores = iter([10.0, 30.0, 20.0, 25.0, 5.0, 50.0])
    snapshots: dict[int, dict] = {}
    steps: list[int] = []

    def scripted(self, model):
        steps.append(len(steps) + 1)
        snapshots[len(steps)] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        return next(scores)

    monkeypatch.setattr(finetune.FineTuner, "evaluate", scripted)
    model = _fit(_model(tiny_vlm, dataset, max_steps=12, val_every_steps=2, early_stop=1), dataset, tmp_path)
    rows = _log(tmp_path, "val_log.jsonl")
    # 10, 30 (best), 20 (1 bad), 25 (2 bad > patience 1): stopped at step 8, never reaching the 50 at step 12
    assert [r["step"] for r in rows] == [2, 4, 6, 8] and [r["val_cider_d"] for r in rows] == [10, 30, 20, 25]
    assert rows[-1]["best_step"] == 4 and len(_log(tmp_path, "train_log.jsonl")) == 8
    final = _trainable(model)
    assert final.keys() == snapshots[2].keys()
    assert all(torch_equal(final[n], snapshots[2][n]) for n in final)  # the weights of step 4, the best
    assert not all(torch_equal(final[n], snapshots[4][n]) for n in final)  # not the last ones


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_killed_fit_resumes_to_the_same_adapter(tiny_vlm, dataset, tmp_path):
    train = dict(max_steps=7, val_every_steps=3, save_every_steps=1)
    lora = {**TINY_LORA, "lora_dropout": 0.1}  # dropout draws from torch's RNG: its state must resume too

    whole = _fit(_model(tiny_vlm, dataset, lora=lora, **train), dataset, tmp_path / "whole", seed=3)

    class Killed(Exception):
        pass

    def kill_at(step):
        def progress(stage, done, total, logs):
            if stage == "finetune" and done == step:
                raise Killed
        return progress

    for step in (2, 5):  # killed twice: once before the first validation, once after it
        with pytest.raises(Killed):
            _fit(_model(tiny_vlm, dataset, lora=lora, **train), dataset, tmp_path / "killed", seed=3,
                 on_progress=kill_at(step))
    with open(tmp_path / "killed" / "train_log.jsonl", "a") as f:
        f.write('{"step": 6, "ep')  # a kill in the middle of a log line
    resumed = _fit(_model(tiny_vlm, dataset, lora=lora, **train), dataset, tmp_path / "killed", seed=3)
    a, b = _trainable(whole), _trainable(resumed)
    assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a)
    for log in ("train_log.jsonl", "val_log.jsonl"):  # the steps redone after the kill are logged once
        strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
        assert strip(_log(tmp_path / "whole", log)) == strip(_log(tmp_path / "killed", log))
    # a finished fit is not redone: the same workdir loads the best weights
    again = _fit(_model(tiny_vlm, dataset, lora=lora, **train), dataset, tmp_path / "killed", seed=3)
    assert all(torch_equal(a[k], v) for k, v in _trainable(again).items())


def test_micro_batch_size_does_not_change_a_step(tiny_vlm, dataset, tmp_path):
    """The loss of a step is normalised by all of its label tokens, not per micro-batch: micro-batches of 1 and of 4
    give the same weights up to float summation order (a per-micro-batch mean would weigh short captions more)."""
    runs = {}
    for micro in (1, 4):
        model = _model(tiny_vlm, dataset, micro=micro, max_steps=3)
        runs[micro] = _trainable(_fit(model, dataset, tmp_path / str(micro)))
    other_seed = _trainable(_fit(_model(tiny_vlm, dataset, max_steps=3), dataset, tmp_path / "seed", seed=1))
    diff = max((runs[1][k] - runs[4][k]).abs().max().item() for k in runs[1])
    control = max((runs[4][k] - other_seed[k]).abs().max().item() for k in runs[1])
    assert diff < 1e-4 < 1e-2 < control  # Adam divides by sqrt(v): a 1e-7 gradient difference can move a weight 1e-5


def test_recipe_errors_are_one_line_before_any_work(tiny_vlm, dataset):
    from idcbench.models.vlm.transformers_vlm import TransformersVLM

    base = {"model": str(tiny_vlm)}
    for bad, match in [({"finetune": "qlora"}, "choose lora, full or null"),
                       ({"finetune": "lora", "shots": 2}, "shots=0"),
                       ({"finetune": "full", "device_map": "auto"}, "drop device_map"),
                       ({"finetune": "lora", "train": {"batch_size": 0}}, "train.batch_size=0"),
                       ({"finetune": "full", "train": {"param_lr": {"(": 1e-5}}}, "not a regular expression"),
                       ({"finetune": "full", "train": {"freeze": ".*"}}, None),
                       ({"num_beams": 0}, "num_beams=0"),
                       ({"min_new_tokens": 60}, "min_new_tokens=60")]:
        if match is None:  # freezing everything is refused when the recipe is applied, before the first step
            with pytest.raises(UserError, match="freezes every parameter"):
                TransformersVLM({**base, **bad}).training_model(seed=0)
            continue
        with pytest.raises(UserError, match=match):
            TransformersVLM({**base, **bad})


# --------------------------------------------------------------------------------------------- runs and adapters
def _run_args(shapes_root: Path, runs: Path, *config: str, limit: int = 4) -> list:
    args = ["run", "vlm", "--dataset", "shapes", "--data-root", shapes_root, "--runs-dir", runs, "--limit", limit,
            "--batch-size", 2, "--device", "cpu", "--metrics", "CIDEr-D"]
    for item in config:
        args += ["--config", item]
    return args


def _lora_config(tiny_vlm: Path) -> list[str]:
    return [f"model={tiny_vlm}", "finetune=lora", "max_new_tokens=6", "micro_batch_size=2",
            "train.max_steps=4", "train.batch_size=4", "train.val_every_steps=2", "train.val_max_pairs=2",
            "train.lr=0.01", "lora.r=8", "lora.lora_alpha=16", 'lora.modules_to_save=["lm_head"]']


def _run_dir(runs: Path) -> Path:
    (d,) = [p for p in runs.glob("shapes/vlm/*") if p.is_dir()]
    return d


def _predictions(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]


def test_run_saves_an_adapter_that_init_turns_into_the_same_captions(tiny_vlm, shapes_root, dataset, tmp_path,
                                                                     capsys):
    from idcbench.files import file_sha256

    code, out, err = run_cli(capsys, *_run_args(shapes_root, tmp_path / "train", *_lora_config(tiny_vlm)))
    assert code == 0, err
    run = _run_dir(tmp_path / "train")
    spec = json.loads((run / "run_spec.json").read_text())
    assert spec["spec"]["train"] is True and spec["spec"]["config"]["finetune"] == "lora"
    assert spec["spec"]["config"]["train"]["epochs"] == 1  # defaults are part of the hashed recipe
    assert spec["spec"]["decoding"] == {"num_beams": 1, "max_new_tokens": 6, "min_new_tokens": 0,
                                        "repetition_penalty": 1.0, "length_penalty": 1.0}
    assert spec["runtime_config"] == {"gradient_checkpointing": False, "micro_batch_size": 2}
    model_dir = run / "model"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja",
            "config.json"} <= {p.name for p in model_dir.iterdir()}
    adapter = json.loads((model_dir / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_vlm) and adapter["r"] == 8
    preds = _predictions(run)

    # --init the run's model/ folder: a new run (the adapter's sha256 in its spec) with the same captions
    code, _, err = run_cli(capsys, *_run_args(shapes_root, tmp_path / "init", f"model={tiny_vlm}",
                                              "max_new_tokens=6"), "--init", model_dir)
    assert code == 0, err
    init_run = _run_dir(tmp_path / "init")
    init_spec = json.loads((init_run / "run_spec.json").read_text())["spec"]
    assert init_spec["train"] is False and init_spec["checkpoint"] == file_sha256(model_dir)
    assert [p["raw"] for p in _predictions(init_run)] == [p["raw"] for p in preds]

    # a bare PEFT adapter (its two files only), found by nothing but adapter_config.json
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(model_dir / name, bare / name)
    code, _, err = run_cli(capsys, *_run_args(shapes_root, tmp_path / "bare-run", f"model={tiny_vlm}",
                                              "max_new_tokens=6"), "--init", bare)
    assert code == 0, err
    bare_run = _run_dir(tmp_path / "bare-run")
    assert [p["raw"] for p in _predictions(bare_run)] == [p["raw"] for p in preds]
    # read with the run's whole config (a bare adapter has none of its own): the variant's settings and the pinned
    # prompt are the ones the run spec records
    from idcbench.models.vlm.prompting import instruction_for

    saved = json.loads((bare_run / "model" / "config.json").read_text())["config"]
    assert saved["instruction"] == instruction_for("shapes") and saved["max_new_tokens"] == 6
    assert (bare_run / "model" / "adapter_model.safetensors").read_bytes() == (bare / "adapter_model.safetensors").read_bytes()

    # `idcbench caption vlm --config model=BASE --init ADAPTER before after`: the run's caption of that pair
    example = dataset.examples("test")[0]
    code, out, err = run_cli(capsys, "caption", "vlm", "--config", f"model={tiny_vlm}", "--init", model_dir,
                             example.before, example.after, "--device", "cpu")
    assert code == 0, err
    assert out.strip() == preds[0]["caption"]

    # without --init, a fine-tuning variant has no weights to caption with
    code, _, err = run_cli(capsys, "caption", "qwen2.5-vl-3b-lora", example.before, example.after, "--device", "cpu")
    assert code == 2 and "--init" in err


def test_merged_export_captions_like_base_plus_adapter(tiny_vlm, shapes_root, tmp_path, capsys):
    from idcbench.models.vlm.adapters import main as export

    code, _, err = run_cli(capsys, *_run_args(shapes_root, tmp_path / "train", *_lora_config(tiny_vlm)))
    assert code == 0, err
    run = _run_dir(tmp_path / "train")
    assert export([str(run / "model"), str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").exists() and (tmp_path / "merged" / "chat_template.jinja").exists()
    code, _, err = run_cli(capsys, *_run_args(shapes_root, tmp_path / "merged-run", f"model={tmp_path / 'merged'}",
                                              "max_new_tokens=6"))
    assert code == 0, err
    assert [p["raw"] for p in _predictions(_run_dir(tmp_path / "merged-run"))] == [p["raw"] for p in _predictions(run)]


def test_the_recipe_and_decoding_are_the_run_identity(tiny_vlm, shapes_root, tmp_path):
    from idcbench.run import RunRequest
    from idcbench.run.request import prepare

    def spec(**config):
        req = RunRequest("vlm", "shapes", data_root=shapes_root, config={"model": str(tiny_vlm), **config}, limit=2,
                         device="cpu", runs_dir=tmp_path)
        return prepare(req).spec

    zero = spec()
    assert zero.train is False  # zero-shot runs stay zero-shot
    lora = spec(finetune="lora")
    assert lora.train is True and lora.train_manifest
    assert spec(finetune="lora", micro_batch_size=1).hash == lora.hash  # a memory knob: recorded, not hashed
    hashes = {zero.hash, lora.hash, spec(finetune="full").hash, spec(finetune="lora", lora={"r": 4}).hash,
              spec(finetune="lora", train={"lr": 1e-3}).hash, spec(num_beams=5).hash, spec(min_new_tokens=3).hash,
              spec(repetition_penalty=1.5).hash, spec(num_beams=5, length_penalty=0.5).hash}
    assert len(hashes) == 9


def test_finer_decoding_reaches_generate(tiny_vlm, dataset, monkeypatch):
    """The FINER variant's decoding keys are what `generate` gets (beam 5, 5 to 50 new tokens, penalty 1.5), and
    min_new_tokens really holds on the tiny model."""
    from transformers import GenerationMixin

    from idcbench.models.vlm.transformers_vlm import TransformersVLM
    from idcbench.registry import MODELS

    finer = MODELS.get("qwen2.5-vl-3b-finer").config
    config = {k: finer[k] for k in ("num_beams", "max_new_tokens", "min_new_tokens", "repetition_penalty")}
    assert config == {"num_beams": 5, "max_new_tokens": 50, "min_new_tokens": 5, "repetition_penalty": 1.5}
    seen = {}
    generate = GenerationMixin.generate

    def recording(self, *args, **kwargs):
        seen.update({k: kwargs[k] for k in config if k in kwargs})
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", recording)
    vlm = TransformersVLM({"model": str(tiny_vlm), **config, "max_new_tokens": 8, "postprocess": False})
    raws = [c.raw for c in vlm.caption([e.pair for e in dataset.examples("test")[:2]])]
    assert seen == {**config, "max_new_tokens": 8}
    tok = vlm._processor.tokenizer
    assert all(len(tok(r, add_special_tokens=False)["input_ids"]) >= 5 for r in raws)


@pytest.mark.parametrize("variant,where", [
    ("qwen2.5-vl-3b-lora", {"lora": "language_model", "full": None}),
    ("qwen2.5-vl-3b-finer", {"lora": "visual", "full": None}),
    ("llava-onevision-7b-lora", {"lora": "language_model", "full": ("vision_tower", "multi_modal_projector")}),
])
def test_recipe_variants_adapt_the_modules_they_name(variant, where):
    """On the real architecture of the variant (its transformers config class at default sizes, on the meta device:
    no weights), LoRA lands where the description says and nowhere else."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from idcbench.models.vlm.recipe import apply_recipe
    from idcbench.models.vlm.transformers_vlm import DEFAULTS
    from idcbench.captioner import deep_merge
    from idcbench.models.vlm import CONFIG_DIR
    from idcbench.registry import MODELS

    model_type = json.loads((CONFIG_DIR / f"{variant}.json").read_text())["model_type"]
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.for_model(model_type))
    model = apply_recipe(model, deep_merge(DEFAULTS, MODELS.get(variant).config))
    adapted = [n for n, m in model.named_modules() if n.endswith(".lora_A")]
    assert adapted and all(f".{where['lora']}." in n for n in adapted)
    full = {n.split(".modules_to_save")[0].rsplit(".", 1)[-1] for n, p in model.named_parameters()
            if p.requires_grad and "modules_to_save" in n}
    assert full == set(where["full"] or ())
    if variant == "qwen2.5-vl-3b-finer":
        ranks = {n: m.r["default"] for n, m in model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "r")}
        assert {r for n, r in ranks.items() if ".merger." in n} == {4}
        assert {r for n, r in ranks.items() if ".blocks." in n} == {16}


def test_torchrun_two_processes_end_with_the_same_adapter(tiny_vlm, shapes_root, tmp_path, capsys):
    """DDP on 2 CPU processes (gloo): each takes a strided share of every step, gradients are summed after
    normalising by the step's label tokens over both: the adapter equals one process's up to float summation order,
    and so do the captions, the run directory name and the logs."""
    import torch
    from safetensors.torch import load_file

    config = [*_lora_config(tiny_vlm), "train.batch_size=5"]  # 5: the ranks get 3 and 2 pairs, unequal shares
    code, _, err = run_cli(capsys, *_run_args(shapes_root, tmp_path / "one", *config))
    assert code == 0, err
    # `python -m torch.distributed.run` (torchrun) with this interpreter: the idcbench under test
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                          "127.0.0.1", "--master_port", str(free_port()), "-m", "idcbench",
                          *map(str, _run_args(shapes_root, tmp_path / "two", *config))],
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    one, two = _run_dir(tmp_path / "one"), _run_dir(tmp_path / "two")
    assert one.name == two.name
    a, b = (load_file(d / "model" / "adapter_model.safetensors") for d in (one, two))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-3 * max(a[k].abs().max().item() for k in a)
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a if "lora_B" in k)  # the adapters trained
    assert (two / "predictions.jsonl").read_bytes() == (one / "predictions.jsonl").read_bytes()
    steps = lambda d: [(r["step"], r["tokens"]) for r in _log(d / "train", "train_log.jsonl")]  # noqa: E731
    assert steps(one) == steps(two)


def test_gpu_benchmark_dry_run_measures_every_part(tmp_path, capsys, monkeypatch):
    """benchmarks/vlm_finetune_gpu.py --dry-run: LoRA steps, merged-model captions and full fine-tuning steps all run
    through `TransformersVLM.fit` / `caption` with tiny sizes on the CPU, and the table and JSON hold them; a
    micro-batch that runs out of GPU memory (simulated for full fine-tuning's first) is halved, not fatal."""
    import runpy

    import torch

    from idcbench.models.vlm import finetune

    step = finetune.FineTuner.step

    def out_of_memory_once(self, *args):
        if self.vlm.config["finetune"] == "full" and self.micro == 2:
            raise torch.cuda.OutOfMemoryError("simulated")
        return step(self, *args)

    monkeypatch.setattr(finetune.FineTuner, "step", out_of_memory_once)
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "vlm_finetune_gpu.py"
    main = runpy.run_path(str(bench))["main"]
    assert main(["--dry-run", "--out", str(tmp_path / "bench.json")]) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    lora, captions, full = result["rows"]
    assert [r["part"][:3] for r in result["rows"]] == ["(a)", "(b)", "(c)"]
    assert all(r["seconds"] > 0 and r["rate"] > 0 for r in result["rows"])
    assert (lora["unit"], captions["unit"], full["unit"]) == ("steps/s", "captions/s", "steps/s")
    assert lora["micro_batch"] * lora["accumulation"] == lora["batch"] and lora["accumulation"] == 2
    assert (full["micro_batch"], full["accumulation"]) == (1, 4)  # halved from 2 after the simulated OOM
    assert 0 < lora["trainable_params"] < full["trainable_params"] <= result["parameters"]
    assert result["prompt_tokens"] > 0 and lora["caption_tokens_per_pair"] > 1
    assert "| (a) lora fine-tuning | 4 | 2 x 2 |" in capsys.readouterr().out


def test_training_from_a_saved_adapter_continues_it(tiny_vlm, dataset, tmp_path):
    """A model loaded from a LoRA folder (what `--init DIR --train` starts from) trains that adapter further: its
    trainable weights start as the saved ones, not as a fresh LoRA initialisation."""
    from idcbench.models.vlm.transformers_vlm import TransformersVLM

    first = _fit(_model(tiny_vlm, dataset, max_steps=2), dataset, tmp_path / "first")
    first.save(tmp_path / "saved")
    saved = _trainable(first)
    loaded = TransformersVLM.load(tmp_path / "saved")
    start = {n: p.detach().clone() for n, p in loaded.training_model(seed=9).named_parameters() if p.requires_grad}
    assert start.keys() == saved.keys() and all(torch_equal(start[k], saved[k]) for k in saved)
    fresh = _model(tiny_vlm, dataset).training_model(seed=9)
    assert not all(torch_equal(p, saved[n]) for n, p in fresh.named_parameters() if p.requires_grad)
