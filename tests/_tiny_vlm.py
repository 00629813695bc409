"""A tiny random Qwen2.5-VL (a real transformers architecture) built offline, and `transformers serve` serving it.

The tokenizer is a byte-level BPE trained here on a few CLEVR-style sentences, with Qwen2-VL's special tokens; the
image processor is Qwen2-VL's, configured for at most 4 x 4 patches of 28 px per image; the chat template is the one
the released Qwen2-VL / Qwen2.5-VL processors carry (the `vlm` family renders every prompt with it, never by hand).
About 120 k parameters: a batch of pairs generates on a CPU in well under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

from _cli import free_port

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]
# The chat template of Qwen/Qwen2-VL-7B-Instruct's processor (Qwen2.5-VL uses the same one).
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "the small red rubber cube changed to blue", "a large metal sphere was added", "no change was made",
    "the cyan cylinder has been moved", "the yellow sphere is gone", "the purple cube became metal",
    "the first image shows a scene before a change and the second image shows the same scene after it",
]


def build_processor(corpus: Sequence[str] = CORPUS, *, vocab_size: int = 400, min_pixels: int = 56 * 56,
                    max_pixels: int = 112 * 112):
    """A Qwen2.5-VL processor: a byte-level BPE of `vocab_size` tokens trained on `corpus` (Qwen2-VL's special
    tokens first, ids 0-6), Qwen2-VL's image processor bounded by `min_pixels` / `max_pixels`, and the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(list(corpus) * 4, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels),
        tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN2_VL_TEMPLATE)


def qwen2_5_vl_config(tokenizer, *, text: dict, vision: dict, vocab_size: int | None = None):
    """A Qwen2.5-VL config whose special token ids are `tokenizer`'s; `text` / `vision` give the sizes."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    return Qwen2_5_VLConfig(
        text_config=dict(vocab_size=vocab_size or len(tokenizer), **text, bos_token_id=ids["<|endoftext|>"],
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        vision_config=vision, image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])


TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=4096,
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]})
TINY_VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                   fullatt_block_indexes=[1], window_size=56)


def build_tiny_vlm(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen2.5-VL (model, tokenizer, image processor, chat template) into `folder`."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    processor = build_processor()
    tokenizer = processor.tokenizer
    config = qwen2_5_vl_config(tokenizer, text=TINY_TEXT, vision=TINY_VISION)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def transformers_serve(model_dir: Path, *, startup_s: float = 240.0) -> Iterator[str]:
    """`transformers serve MODEL_DIR` on a free loopback port (offline, CPU); yields its ``/v1`` base URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu", "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(base_url + "/models", timeout=2) as r:
                    json.loads(r.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("transformers serve did not start in time") from None
                time.sleep(0.5)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
