"""Greedy captioning speed: idcbench's KV-cached decoding with early stop against the official strategy (32 full
decoder recomputes, encoder included, no early stop) on a randomly initialised ViT-B/32-sized CLIP4IDC. Both produce the
same captions (asserted). Run with `make bench` or `python benchmarks/bench_decoding.py [pairs]`.

The random decoder is made to never emit <eot> (its output bias is lowered), so every caption is 32 tokens long and
the speed-up measured is that of the KV cache alone; real captions (about 10 tokens on CLEVR) also gain early stopping.
"""

from __future__ import annotations

import sys
import time

import pytest
import torch

PAIRS = 8


def build(pairs: int = PAIRS):
    from idcbench.captioner import create_model

    torch.manual_seed(0)
    model = create_model("clip4idc", pretrained=None, eval_batch_size=pairs)
    dec = model.net.decoder
    images = torch.randn(2, pairs, 3, 224, 224)
    with torch.no_grad():
        # A random decoder's captions either end at once or never; the benchmark takes the case least favourable to
        # ours: no caption ends (<eot> and "!" suppressed), so early stopping never helps and all 32 steps are decoded.
        dec.classifier.cls.predictions.bias[model.bpe.eot] = -20.0
        dec.classifier.cls.predictions.bias[0] = -20.0
    return model, images


def _ours(model, tokens):
    from idcbench.models.clip4idc.decoder import greedy_decode

    return greedy_decode(model.net.decoder, tokens, sot=model.bpe.sot, eot=model.bpe.eot, max_len=32)


def _official(model, tokens):
    from idcbench.models.clip4idc.decoder import greedy_decode_official

    return greedy_decode_official(model.net.decoder, tokens, sot=model.bpe.sot, max_len=32)


def caption(model, images, strategy):
    with torch.no_grad():
        tokens = model.net.encode_pair(images[0], images[1])
        ids = _ours(model, tokens) if strategy == "ours" else _official(model, tokens)
    return [model.bpe.decode_official(r.tolist()) for r in ids]


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(2)
    model, images = build()
    assert caption(model, images, "ours") == caption(model, images, "official")
    return model, images


@pytest.mark.parametrize("strategy", ["ours", "official"])
def test_greedy_captioning(benchmark, setup, strategy):
    model, images = setup
    benchmark.pedantic(caption, args=(model, images, strategy), rounds=2, iterations=1)
    benchmark.extra_info["pairs"] = images.shape[1]


def main(pairs: int) -> None:
    torch.set_num_threads(2)
    model, images = build(pairs)
    out = {}
    for strategy in ("ours", "official", "ours", "official"):
        t0 = time.perf_counter()
        caps = caption(model, images, strategy)
        out.setdefault(strategy, []).append(time.perf_counter() - t0)
        out[strategy + "_caps"] = caps
    assert out["ours_caps"] == out["official_caps"], "captions differ"
    ours, official = min(out["ours"]), min(out["official"])
    print(f"{pairs} pairs, ViT-B/32-sized CLIP4IDC, CPU threads {torch.get_num_threads()}")
    print(f"ours (KV cache + early stop): {pairs / ours:.2f} pairs/s; official (32 full recomputes): "
          f"{pairs / official:.2f} pairs/s; speed-up {official / ours:.2f}x; identical captions: True")
    print("caption lengths (words):", [len(c.split()) for c in out["ours_caps"]])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PAIRS)
