"""`vlm` fine-tuning of a Qwen2.5-VL-3B-sized model on one GPU, through idcbench's own fit code
(`python benchmarks/vlm_finetune_gpu.py [--dry-run] [--out FILE]`).

The model is Qwen2.5-VL-3B-Instruct's architecture at its real sizes (the config values are written below: 36 layers
of 2048, vocabulary 151,936, a 32-block vision tower of 1280) with random weights, built on the GPU (nothing is
downloaded). The processor is the test suite's (`tests/_tiny_vlm.py`): Qwen2-VL's image processor at its default
pixel bounds and chat template, with a byte-level BPE (a few hundred tokens) trained on idcbench's instructions, the
template's words and the captions below: the embedding and output head keep the real 151,936 rows, and a prompt
tokenizes to about the length Qwen's tokenizer gives it (printed: a 480 x 320 image is 187 tokens). 256 pairs of 480 x 320 PNG files
are written first. Measured, each with the peak GPU memory:

(a) LoRA (`qwen2.5-vl-3b-lora`'s recipe: r 16 on the language model, vision frozen; bf16 base, float32 adapters,
    bf16 autocast): optimizer steps/s and pairs/s at 16 pairs a step in micro-batches of 8 (2 accumulations);
(b) captions/s of that model with the adapter merged (``merge_and_unload``), batches of 16, greedy, exactly 32 new
    tokens a caption (``min_new_tokens``: random weights would stop anywhere; IDC captions are 8 to 15 tokens);
(c) full fine-tuning (`qwen2.5-vl-3b-full`'s recipe: float32 master weights, AdamW, bf16 autocast): steps/s and
    pairs/s at 16 pairs a step in micro-batches of 4 (4 accumulations).

A micro-batch that does not fit is halved (and the table says so). The first steps of each part are not timed. Prints
one table and writes it as JSON (`--out`). `--dry-run` runs every part with tiny sizes on the CPU (part of
`make test`: tests/test_vlm_finetune.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

# Qwen/Qwen2.5-VL-3B-Instruct's config.json (text and vision sizes; token ids come from the processor here)
QWEN2_5_VL_3B_TEXT = dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                          num_key_value_heads=2, max_position_embeddings=128000, rms_norm_eps=1e-6,
                          hidden_act="silu", tie_word_embeddings=True,
                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                           "mrope_section": [16, 24, 24]})
QWEN2_5_VL_3B_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_chans=3,
                            out_hidden_size=2048, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                            window_size=112, fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu",
                            tokens_per_second=2)
QWEN2_5_VL_VOCAB = 151936

FULL = dict(device="cuda", pairs=256, width=480, height=320, vocab=1000, real_sizes=True, batch=16,
            lora_micro=8, full_micro=4, warmup_steps=2, timed_steps=8, caption_pairs=64, caption_batch=16,
            new_tokens=32)
DRY = dict(device="cpu", pairs=12, width=96, height=64, vocab=400, real_sizes=False, batch=4, lora_micro=2,
           full_micro=2, warmup_steps=1, timed_steps=2, caption_pairs=4, caption_batch=2, new_tokens=4)
COLOURS = ["red", "green", "blue", "yellow", "purple", "cyan"]


def write_pairs(root: Path, n: int, width: int, height: int) -> list:
    """`n` pairs of PNG files: coloured rectangles on grey; the after image moves one of them. References say so."""
    from PIL import Image, ImageDraw

    from idcbench.data import Example

    g = torch.Generator().manual_seed(0)
    rgb = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 60, 200), "yellow": (220, 200, 40),
           "purple": (130, 50, 160), "cyan": (40, 190, 200)}
    examples = []
    for i in range(n):
        boxes = [(COLOURS[int(c)], *(int(v) for v in xy)) for c, xy in
                 zip(torch.randint(0, 6, (3,), generator=g), torch.rand(3, 2, generator=g) * 0.7)]
        images = []
        for moved in (False, True):
            img = Image.new("RGB", (width, height), (128, 128, 128))
            draw = ImageDraw.Draw(img)
            for k, (colour, x, y) in enumerate(boxes):
                x0, y0 = int(x * width) + (width // 5 if moved and k == 0 else 0), int(y * height)
                draw.rectangle([x0, y0, x0 + width // 8, y0 + height // 8], fill=rgb[colour])
            images.append(img)
        paths = (root / f"{i}_before.png", root / f"{i}_after.png")
        for path, img in zip(paths, images):
            img.save(path, compress_level=1)
        examples.append(Example(str(i), *paths, (f"the {boxes[0][0]} box moved to the right",
                                                  f"a {boxes[0][0]} rectangle has been moved")))
    return examples


def build(cfg: dict, root: Path):
    """(processor, Qwen2.5-VL config, folder with both but no weights, `RandomVLM` class)."""
    from _tiny_vlm import CORPUS, TINY_TEXT, TINY_VISION, build_processor, qwen2_5_vl_config

    from idcbench.models.vlm.prompting import instruction_for
    from idcbench.models.vlm.transformers_vlm import TransformersVLM

    instructions = [instruction_for(d) for d in (None, "clevr-change", "spot-the-diff", "ier")]
    corpus = [*CORPUS, *instructions, "system\nYou are a helpful assistant.", "user", "assistant",
              *(f"the {c} box moved to the right" for c in COLOURS),
              *(f"a {c} rectangle has been moved" for c in COLOURS)]
    if cfg["real_sizes"]:
        processor = build_processor(corpus, vocab_size=cfg["vocab"], min_pixels=3136, max_pixels=12845056)
        config = qwen2_5_vl_config(processor.tokenizer, text=QWEN2_5_VL_3B_TEXT, vision=QWEN2_5_VL_3B_VISION,
                                   vocab_size=QWEN2_5_VL_VOCAB)
    else:
        processor = build_processor(corpus, vocab_size=cfg["vocab"])
        config = qwen2_5_vl_config(processor.tokenizer, text=TINY_TEXT, vision=TINY_VISION)
    folder = root / "model"
    config.save_pretrained(folder)
    processor.save_pretrained(folder)

    class RandomVLM(TransformersVLM):
        """`vlm` whose weights are drawn at random on its device instead of read from `folder` (3B parameters are
        built in seconds; writing and reading them would be most of the benchmark)."""

        def _load(self, *, training: bool = False) -> None:
            from transformers import Qwen2_5_VLForConditionalGeneration

            full = training and self.config["finetune"] == "full"
            dtype = torch.float32 if full or not str(self.device).startswith("cuda") else torch.bfloat16
            torch.manual_seed(0)
            with torch.device(self.device):
                model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
            model.generation_config.eos_token_id = config.text_config.eos_token_id
            model.generation_config.pad_token_id = config.text_config.pad_token_id
            self._model, self._processor = model.eval(), processor

    return processor, config, folder, RandomVLM


class Stop(Exception):
    """Raised from the progress callback once the timed steps are done (no final checkpoint is written)."""


def fine_tune(cfg: dict, vlm_class, folder: Path, examples: list, workdir: Path, recipe: str) -> tuple[dict, object]:
    """Steps/s of one recipe through `TransformersVLM.fit`; halves the micro-batch on out-of-memory."""
    from idcbench.captioner import FitContext, deep_merge
    from idcbench.registry import MODELS

    micro = cfg["lora_micro" if recipe.endswith("lora") else "full_micro"]
    steps = cfg["warmup_steps"] + cfg["timed_steps"]
    while True:
        config = deep_merge(MODELS.get(recipe).config, {
            "model": str(folder), "micro_batch_size": micro, "gradient_checkpointing": False, "max_new_tokens": 8,
            "train": {"batch_size": cfg["batch"], "max_steps": steps + 1, "val_every_steps": None,
                      "save_every_steps": None, "early_stop": None}})
        vlm = vlm_class(config).to(cfg["device"])
        stamps: list[float] = []

        def progress(stage, step, total, logs):
            if stage == "finetune":
                if cfg["device"].startswith("cuda"):
                    torch.cuda.synchronize()
                stamps.append(time.perf_counter())
                if step == steps:
                    raise Stop

        _reset(cfg)
        out_of_memory = False
        try:
            vlm.fit(examples, [], FitContext(workdir=workdir / f"{recipe}-{micro}", device=cfg["device"],
                                             on_progress=progress))
        except Stop:
            pass
        except torch.cuda.OutOfMemoryError:
            if micro == 1:
                raise
            out_of_memory = True
        if out_of_memory:  # outside the except block: its traceback no longer holds the model and optimizer
            vlm._model = None
            del vlm
            _reset(cfg)
            print(f"{recipe}: micro-batch {micro} ran out of memory; trying {micro // 2}", file=sys.stderr)
            micro //= 2
            continue
        seconds = stamps[-1] - stamps[cfg["warmup_steps"] - 1]
        log = [json.loads(line) for line in (workdir / f"{recipe}-{micro}" / "train_log.jsonl").read_text().splitlines()]
        tokens = sum(r["tokens"] for r in log) / (len(log) * cfg["batch"])
        trainable = sum(p.numel() for p in vlm._model.parameters() if p.requires_grad)
        row = {"part": f"({'a' if recipe.endswith('lora') else 'c'}) {recipe.split('-')[-1]} fine-tuning",
               "recipe": recipe, "batch": cfg["batch"], "micro_batch": micro,
               "accumulation": -(-cfg["batch"] // micro), "steps": cfg["timed_steps"], "seconds": seconds,
               "rate": cfg["timed_steps"] / seconds, "unit": "steps/s",
               "pairs_per_s": cfg["timed_steps"] * cfg["batch"] / seconds, "peak_gib": _peak(cfg),
               "trainable_params": trainable, "caption_tokens_per_pair": round(tokens, 1)}
        return row, vlm


def merged_captions(cfg: dict, vlm, examples: list) -> dict:
    """Captions/s of the LoRA model with its adapter merged into the weights."""
    vlm._model = vlm._model.merge_and_unload().eval()
    vlm.config.update({"max_new_tokens": cfg["new_tokens"], "min_new_tokens": cfg["new_tokens"]})
    pairs = [e.pair for e in examples[: cfg["caption_pairs"]]]
    batch = cfg["caption_batch"]
    vlm.caption(pairs[:batch])  # warm-up batch, not timed
    _reset(cfg)
    t0 = time.perf_counter()
    for i in range(0, len(pairs), batch):
        vlm.caption(pairs[i:i + batch])
    if cfg["device"].startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"part": "(b) merged LoRA model, captions", "recipe": "qwen2.5-vl-3b-lora (merged)", "batch": batch,
            "micro_batch": batch, "accumulation": 1, "steps": len(pairs), "seconds": seconds,
            "rate": len(pairs) / seconds, "unit": "captions/s", "pairs_per_s": len(pairs) / seconds,
            "peak_gib": _peak(cfg), "trainable_params": 0, "caption_tokens_per_pair": cfg["new_tokens"]}


def _reset(cfg: dict) -> None:
    import gc

    gc.collect()
    if cfg["device"].startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak(cfg: dict) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if cfg["device"].startswith("cuda") else 0.0


def run(cfg: dict) -> dict:
    import peft
    import transformers

    from idcbench.models.vlm.collate import prompt_batch

    torch.set_num_threads(min(torch.get_num_threads(), 8))
    root = Path(tempfile.mkdtemp(prefix="idcbench-vlm-finetune-"))
    started = time.perf_counter()
    examples = write_pairs(root, cfg["pairs"], cfg["width"], cfg["height"])
    _, config, folder, vlm_class = build(cfg, root)
    lora, vlm = fine_tune(cfg, vlm_class, folder, examples, root / "train", "qwen2.5-vl-3b-lora")
    prompt_tokens = int(prompt_batch(vlm._processor, vlm.conversations([examples[0].pair]), {})["input_ids"].shape[1])
    captions = merged_captions(cfg, vlm, examples)
    vlm._model = None
    del vlm
    _reset(cfg)
    full, vlm = fine_tune(cfg, vlm_class, folder, examples, root / "train", "qwen2.5-vl-3b-full")
    params = sum(p.numel() for p in vlm._model.parameters())
    device = torch.cuda.get_device_name(0) if cfg["device"].startswith("cuda") else platform.processor() or "cpu"
    return {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "parameters": params, "prompt_tokens": prompt_tokens, "config": cfg, "rows": [lora, captions, full],
            "wall_seconds": round(time.perf_counter() - started, 1)}


def table(result: dict) -> str:
    lines = [f"device: {result['device']}, torch {result['torch']}, transformers {result['transformers']}, "
             f"peft {result['peft']}; {result['parameters'] / 1e9:.2f} B parameters; a prompt of "
             f"{result['prompt_tokens']} tokens (two images); {result['wall_seconds']} s",
             "| part | pairs a step | micro-batch x accumulation | rate | pairs/s | peak GPU GiB | trainable | "
             "label tokens a pair |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['part']} | {r['batch']} | {r['micro_batch']} x {r['accumulation']} | {r['rate']:.2f} "
                     f"{r['unit']} | {r['pairs_per_s']:.1f} | {r['peak_gib']:.1f} | {r['trainable_params'] / 1e6:.1f} M "
                     f"| {r['caption_tokens_per_pair']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    ap.add_argument("--out", type=Path, default=Path("vlm_finetune_gpu.json"))
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("vlm_finetune_gpu: no CUDA device here; run it on a GPU machine, or pass --dry-run", file=sys.stderr)
        return 2
    result = run(DRY if args.dry_run else FULL)
    print(table(result))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
