"""The GPU path measured end to end (`make bench-gpu`; `python benchmarks/gpu_check.py [--dry-run] [--out FILE]`).

(a) caption a CLEVR-Change-sized set (7,970 pairs of 224 px PNG files written by the script) with a random-weight
ViT-B/32 CLIP4IDC, reading the files, bf16: wall seconds and pairs/s (goal: under 15 s on an H100/H200);
(b) stage-1 steps/s at batch 128 and stage-2 steps/s at batch 64, bf16;
(c) greedy captions of a fixed-weight official-format ViT-B/32 checkpoint in float32 on the GPU against the CPU;
(d) nearest-neighbour (ViT-B/32 pooled) and DUDA (ResNet-101 layer-3 grid) feature extraction pairs/s;
(e) the peak GPU memory of each. Prints one table and writes it as JSON. Random weights: nothing to download.
`--dry-run` runs every part with tiny sizes on the CPU (the miniature CLIP); it is part of `make test`.
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

FULL = dict(device="cuda", backbone="ViT-B-32", pairs=7970, size=224, s1_batch=128, s2_batch=64, steps=10,
            check_pairs=64, feature_pairs=2000, duda_backbone="RN101", decoder={})
DRY = dict(device="cpu", backbone="idc-tiny-vit", pairs=12, size=64, s1_batch=4, s2_batch=4, steps=2,
           check_pairs=3, feature_pairs=6, duda_backbone="idc-tiny-vit", decoder={"heads": 4, "ffn": 64, "layers": 1})


def write_pairs(root: Path, n: int, size: int) -> list:
    """n pairs of random PNG files (each after image differs from its before image in one square)."""
    from PIL import Image

    from idcbench.data import Pair

    g = torch.Generator().manual_seed(0)
    pairs = []
    for i in range(n):
        before = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8)
        after = before.clone()
        after[size // 4: size // 2, size // 4: size // 2] = 255 - after[size // 4: size // 2, size // 4: size // 2]
        paths = (root / f"{i}_b.png", root / f"{i}_a.png")
        for path, img in zip(paths, (before, after)):
            Image.fromarray(img.numpy()).save(path)
        pairs.append(Pair(*paths))
    return pairs


class Part:
    """Times one part and records the peak GPU memory it needed."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.t0
        self.peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30 if self.cuda else 0.0


def model(cfg: dict, **over):
    from idcbench.factory import create_model

    torch.manual_seed(0)
    kw = dict(pretrained=None, backbone=cfg["backbone"], amp=True, eval_batch_size=cfg["s2_batch"])
    if cfg["decoder"]:
        kw["decoder"] = cfg["decoder"]
    return create_model("clip4idc", **{**kw, **over}).to(cfg["device"])


def caption_set(cfg: dict, pairs: list) -> dict:
    m = model(cfg)
    with Part(cfg["device"]) as p:
        caps = m.caption(pairs)
    assert len(caps) == len(pairs)
    return {"part": "(a) caption, bf16, from files", "pairs": len(pairs), "seconds": p.seconds,
            "rate": len(pairs) / p.seconds, "unit": "pairs/s", "peak_gib": p.peak_gib}


def train_steps(cfg: dict, pairs: list, stage: int) -> dict:
    from idcbench.captioner import FitContext
    from idcbench.data import Example
    from idcbench.models.clip4idc import pairs as P
    from idcbench.models.clip4idc.optim import BertAdam, param_groups
    from idcbench.models.clip4idc.train import StageRunner, _autocast

    batch = cfg["s1_batch"] if stage == 1 else cfg["s2_batch"]
    m = model(cfg)
    train = [Example(str(i), p.before, p.after, (f"the square {i % 7} changed",), {}) for i, p in enumerate(pairs)]
    runner = StageRunner(m, stage, FitContext(workdir=Path(tempfile.mkdtemp())), train, [])
    m.begin_stage(stage)
    m.prepare_stage(stage, train)
    opt = BertAdam(param_groups(m.net, stage=stage, lr=1e-4, coef_lr=1e-3, weight_decay=0.01), lr=1e-4, t_total=-1)
    plan = P.stage1_plan(P.stage1_samples(train), seed=0, epoch=0) if stage == 1 else P.stage2_plan(train, seed=0, epoch=0)
    chunks = [c for c in P.batches(plan * (1 + batch * (cfg["steps"] + 1) // max(1, len(plan))), batch)
              if len(c) == batch][: cfg["steps"] + 1]
    m.net.train()

    def step(chunk):
        with _autocast(cfg["device"], True):
            loss = runner.loss_stage1(chunk) if stage == 1 else runner.loss_stage2(chunk)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    step(chunks[0])  # warm-up
    with Part(cfg["device"]) as p:
        losses = [step(c) for c in chunks[1:]]
    assert all(x == x for x in losses), losses
    return {"part": f"(b) stage-{stage} steps, bf16, batch {batch}", "pairs": batch, "seconds": p.seconds,
            "rate": len(losses) / p.seconds, "unit": "steps/s", "peak_gib": p.peak_gib}


def official_agreement(cfg: dict, pairs: list) -> dict:
    """A fixed-weight stage-2 checkpoint in the official format, float32: greedy captions on the device vs the CPU."""
    m = model(cfg, amp=False).to("cpu")
    torch.manual_seed(1)
    with torch.no_grad():  # fixed weights; tied tensors are one parameter, so the state dict's copies agree
        for prm in m.net.parameters():
            prm.normal_(0.0, 0.02)
    path = Path(tempfile.mkdtemp()) / "pytorch_model.bin"
    torch.save(m.net.state_dict(), path)
    m.load_checkpoint(path)
    cpu = m.caption(pairs)
    m.to(cfg["device"])
    with Part(cfg["device"]) as p:
        dev = m.caption(pairs)
    agree = sum(a == b for a, b in zip(cpu, dev))
    return {"part": "(c) official-format checkpoint, fp32, device vs CPU", "pairs": len(pairs), "seconds": p.seconds,
            "rate": agree / len(pairs), "unit": "identical captions", "peak_gib": p.peak_gib}


def features(cfg: dict, pairs: list, which: str) -> dict:
    from idcbench.models.baselines.features import FrozenFeatures

    backbone = cfg["backbone"] if which == "nearest-neighbour" else cfg["duda_backbone"]
    what = "pooled" if which == "nearest-neighbour" else "grid"
    grid_layer = -1 if which == "nearest-neighbour" or backbone == "idc-tiny-vit" else 3
    fx = FrozenFeatures(backbone, None, grid_layer=grid_layer, device=cfg["device"],
                        batch_size=512 if cfg["device"].startswith("cuda") else 8)
    paths = [p for pair in pairs for p in (pair.before, pair.after)]
    with Part(cfg["device"]) as p:
        out = fx.encode(paths, what)
    assert out.shape[0] == len(paths)
    return {"part": f"(d) {which} features ({backbone}, {what})", "pairs": len(pairs), "seconds": p.seconds,
            "rate": len(pairs) / p.seconds, "unit": "pairs/s", "peak_gib": p.peak_gib}


def run(cfg: dict) -> dict:
    root = Path(tempfile.mkdtemp(prefix="idcbench-gpu-check-"))
    pairs = write_pairs(root, cfg["pairs"], cfg["size"])
    rows = [caption_set(cfg, pairs), train_steps(cfg, pairs, 1), train_steps(cfg, pairs, 2),
            official_agreement(cfg, pairs[: cfg["check_pairs"]]),
            features(cfg, pairs[: cfg["feature_pairs"]], "nearest-neighbour"),
            features(cfg, pairs[: cfg["feature_pairs"]], "duda")]
    device = torch.cuda.get_device_name(0) if cfg["device"].startswith("cuda") else platform.processor() or "cpu"
    return {"device": device, "torch": torch.__version__, "config": cfg, "rows": rows}


def table(result: dict) -> str:
    lines = [f"device: {result['device']}, torch {result['torch']}",
             "| part | pairs | seconds | rate | unit | peak GPU GiB |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['part']} | {r['pairs']} | {r['seconds']:.2f} | {r['rate']:.2f} | {r['unit']} | "
                     f"{r['peak_gib']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a GPU machine, or pass --dry-run", file=sys.stderr)
        return 2
    result = run(DRY if args.dry_run else FULL)
    print(table(result))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
