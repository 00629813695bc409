"""The GPU path measured end to end against its goals (`make bench-gpu`; `python benchmarks/gpu_check.py [--dry-run]`).

Random weights throughout (nothing to download), bf16 autocast, images read from PNG files through the image pipeline
(decoded in DataLoader workers, normalised on the device):

(a) caption 7,970 pairs (CLEVR-Change's test size) of 224 px PNG files with a ViT-B/32 CLIP4IDC: goal < 8 s;
(b) stage-1 steps at batch 128 (goal >= 15 steps/s) and stage-2 steps at batch 64 (>= 20 steps/s) through the real
    `fit`, reading the step images from the files and then from the decoded-image cache;
(c) greedy captions of a fixed-weight official-format checkpoint in float32, GPU against CPU: all identical;
(d) nearest-neighbour (ViT-B/32 pooled) and DUDA (RN101 layer-3 grid) features: >= 2,000 pairs/s;
(e) the -tiny demo models trained on `shapes` on the GPU: >= 60 steps/s;
(f) an end-to-end `idcbench run clip4idc` (a few hundred steps of both stages, validation, test captions, CIDEr-D) on
    a synthetic CLEVR-Change-layout set rendered at 224 px;
(g) torch.profiler's split of a stage-1 step (batch 128) into the loop's phases;
(h) the pipeline's decoding rate for CLEVR's real 480 x 320 PNG files resized to 224 px, against the 3,840 images/s
    that stage 1 at 15 steps/s reads when nothing is cached.
Each part records its peak GPU memory. Parts run in that order within a time budget (a part that would not fit is
reported as skipped), a failing part is reported and the others still run; the table is printed at the end and the
JSON written to --out after every part. `--dry-run` runs every part with tiny sizes on the CPU (part of `make test`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

FULL = dict(device="cuda", backbone="ViT-B-32", pairs=7970, size=224, s1_batch=128, s2_batch=64, steps=30, warmup=5,
            check_pairs=64, duda_backbone="RN101", decoder={}, workers=None, budget_s=285, decoding={},
            e2e_scenes=1500, e2e_size=224, e2e_config=["stage1.epochs=3", "stage1.max_steps=120", "stage1.val_max_pairs=200",
                                                       "stage2.epochs=2", "stage2.max_steps=150", "stage2.val_max_pairs=200"],
            tiny_data=None, tiny_config={}, clevr_pngs=2000, profile_steps=(3, 5, 5))
DRY = dict(device="cpu", backbone="idc-tiny-vit", pairs=12, size=64, s1_batch=4, s2_batch=4, steps=2, warmup=1,
           check_pairs=3, duda_backbone="idc-tiny-vit", decoder={"heads": 4, "ffn": 64, "layers": 1}, workers=1,
           decoding={"max_len": 8},
           budget_s=900, e2e_scenes=12, e2e_size=64,
           e2e_config=["stage1.max_steps=2", "stage1.batch_size=4", "stage1.val_max_pairs=2", "stage2.max_steps=2",
                       "stage2.batch_size=4", "stage2.epochs=1", "stage2.val_max_pairs=2", "decoding.max_len=6"],
           tiny_data="e2e", tiny_config={
               "clip4idc-tiny": {"stage1": {"max_steps": 3, "batch_size": 4, "val_max_pairs": 2},
                                 "stage2": {"max_steps": 3, "batch_size": 4, "epochs": 1, "val_max_pairs": 2}},
               "clip-diff-tiny": {"stage2": {"max_steps": 3, "batch_size": 4, "epochs": 1, "val_max_pairs": 2}},
               "duda-tiny": {"epochs": 1, "batch_size": 4, "val_max_examples": 2}},
           clevr_pngs=4, profile_steps=(1, 1, 2))

# part -> (goal as text, rate >= / <= this); None: no rate goal
GOALS = {"a": ("< 8 s", lambda r: r["seconds"] < 8), "b1": (">= 15 steps/s", lambda r: r["rate"] >= 15),
         "b2": (">= 20 steps/s", lambda r: r["rate"] >= 20), "c": ("all identical", lambda r: r["rate"] == 1.0),
         "d": (">= 2,000 pairs/s", lambda r: r["rate"] >= 2000), "e": (">= 60 steps/s", lambda r: r["rate"] >= 60),
         "h": (">= 3,840 images/s", lambda r: r["rate"] >= 3840)}


# ---- files --------------------------------------------------------------------------------------------------------
def _write_noise(root: str, indices: list[int], size: int) -> None:
    from PIL import Image

    for i in indices:
        before = np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)
        after = before.copy()
        q = slice(size // 4, size // 2)
        after[q, q] = 255 - after[q, q]  # one changed square
        Image.fromarray(before).save(f"{root}/{i}_b.png")
        Image.fromarray(after).save(f"{root}/{i}_a.png")


def _write_scenes(root: str, indices: list[int], width: int, height: int) -> None:
    """Smooth CLEVR-like pictures (lit floor, a few shaded blobs): they compress and decode like rendered scenes."""
    from PIL import Image, ImageDraw, ImageFilter

    for i in indices:
        rng = np.random.default_rng(10_000 + i)
        y = np.linspace(0.35, 0.6, height)[:, None, None] * np.ones((1, width, 3))
        img = Image.fromarray((y * 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.integers(3, 7)):
            x0, y0 = int(rng.integers(0, width - 60)), int(rng.integers(height // 3, height - 60))
            r = int(rng.integers(15, 45))
            color = tuple(int(c) for c in rng.integers(30, 230, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x0 + r, y0 + r), fill=color)
        img.filter(ImageFilter.GaussianBlur(1.2)).save(f"{root}/clevr_{i}.png")


def in_processes(fn: Callable, root: Path, n: int, *args: Any, processes: int) -> None:
    """`fn(root, indices, *args)` over range(n) in `processes` forked processes (before CUDA is initialised)."""
    if processes <= 1 or n < 2 * processes:
        fn(str(root), list(range(n)), *args)
        return
    # forked Processes, not a pool: the function needs no pickling (this file may run through runpy)
    procs = [get_context("fork").Process(target=fn, args=(str(root), list(range(s, n, processes)), *args))
             for s in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"writing files: a process exited with {p.exitcode}")


def cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ---- measuring ----------------------------------------------------------------------------------------------------
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


class _TimeUp(Exception):
    pass


class Steps:
    """A `FitContext.on_progress` that marks each training step per stage, keeps each stage's peak GPU memory, and
    stops the fit (`_TimeUp`) once `deadline` (perf_counter) has passed."""

    def __init__(self, device: str, deadline: float = float("inf"), names: tuple[str, ...] = ("stage1", "stage2", "train")):
        self.cuda, self.deadline, self.names = device.startswith("cuda"), deadline, names
        self.marks: dict[str, list[float]] = {}
        self.peak: dict[str, float] = {}

    def __call__(self, stage: str, step: int, total: int, logs: dict) -> None:
        if stage not in self.names:
            return
        if self.cuda:
            if stage not in self.marks:
                torch.cuda.reset_peak_memory_stats()
            self.peak[stage] = torch.cuda.max_memory_allocated() / 2 ** 30
        self.marks.setdefault(stage, []).append(time.perf_counter())
        if time.perf_counter() > self.deadline:
            raise _TimeUp

    def rate(self, stage: str, warmup: int) -> tuple[int, float]:
        """(timed steps, steps/s from the median step: validation between epochs is not a step)."""
        gaps = [b - a for a, b in zip(self.marks.get(stage, []), self.marks.get(stage, [])[1:])][warmup:]
        gaps = gaps or [b - a for a, b in zip(self.marks.get(stage, []), self.marks.get(stage, [])[1:])]
        return len(gaps), (1.0 / statistics.median(gaps) if gaps else float("nan"))


def model(cfg: dict, **over):
    from idcbench.factory import create_model

    torch.manual_seed(0)
    kw = dict(pretrained=None, backbone=cfg["backbone"], amp=True, eval_batch_size=cfg["s2_batch"],
              loader_workers=cfg["workers"])
    if cfg["decoder"]:
        kw["decoder"] = cfg["decoder"]
    if cfg["decoding"]:
        kw["decoding"] = cfg["decoding"]
    return create_model("clip4idc", **{**kw, **over}).to(cfg["device"])


def row(part: str, what: str, n: int, seconds: float, rate: float, unit: str, peak: float, note: str = "") -> dict:
    goal = GOALS.get(part)
    r = {"part": part, "what": what, "n": n, "seconds": seconds, "rate": rate, "unit": unit, "peak_gib": peak,
         "goal": goal[0] if goal else "", "note": note}
    r["met"] = bool(goal[1](r)) if goal and rate == rate else None
    return r


# ---- the parts ----------------------------------------------------------------------------------------------------
def caption_set(cfg: dict, pairs: list) -> list[dict]:
    m = model(cfg)
    with Part(cfg["device"]) as p:
        caps = m.caption(pairs)
    assert len(caps) == len(pairs)
    return [row("a", f"caption {cfg['size']} px PNG pairs, bf16", len(pairs), p.seconds, len(pairs) / p.seconds,
                "pairs/s", p.peak_gib)]


def train_stages(cfg: dict, pairs: list, deadline: float, *, cached: bool) -> list[dict]:
    """Both stages through `fit` (no validation set), `warmup + steps` steps each, at the check's batch sizes."""
    from idcbench.captioner import FitContext
    from idcbench.data import Example

    train = [Example(str(i), p.before, p.after, (f"the square {i % 7} changed",), {}) for i, p in enumerate(pairs)]
    n = cfg["warmup"] + cfg["steps"]
    m = model(cfg, image_cache=cached, stages=[1, 2],
              stage1={"epochs": 100, "max_steps": n, "batch_size": cfg["s1_batch"], "early_stop": None},
              stage2={"epochs": 100, "max_steps": n, "batch_size": cfg["s2_batch"], "early_stop": None})
    if cached:
        m.image_pipeline().add_to_cache([p for e in train for p in (e.before, e.after)])  # built before the clock
    steps = Steps(cfg["device"], deadline)
    note = ""
    try:
        m.fit(train, [], FitContext(workdir=Path(tempfile.mkdtemp()), device=cfg["device"], on_progress=steps))
    except _TimeUp:
        note = "stopped by the time budget"
    source = "the image cache" if cached else "PNG files"
    out = []
    for stage, part, batch in (("stage1", "b1", cfg["s1_batch"]), ("stage2", "b2", cfg["s2_batch"])):
        k, rate = steps.rate(stage, cfg["warmup"])
        if k:
            out.append(row(part, f"stage-{stage[-1]} steps, batch {batch}, bf16, images from {source}", k,
                           k / rate, rate, "steps/s", steps.peak.get(stage, 0.0), note))
    return out


def official_agreement(cfg: dict, pairs: list) -> list[dict]:
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
    return [row("c", "official-format checkpoint, fp32, device vs CPU captions", len(pairs), p.seconds,
                agree / len(pairs), "identical", p.peak_gib, f"{agree} / {len(pairs)}")]


def features(cfg: dict, pairs: list) -> list[dict]:
    from idcbench.models.baselines.features import FrozenFeatures

    out = []
    for which, backbone, what in (("nearest-neighbour", cfg["backbone"], "pooled"), ("duda", cfg["duda_backbone"], "grid")):
        grid_layer = 3 if which == "duda" and backbone != "idc-tiny-vit" else -1
        fx = FrozenFeatures(backbone, None, grid_layer=grid_layer, device=cfg["device"], workers=cfg["workers"],
                            batch_size=512 if cfg["device"].startswith("cuda") else 8)
        paths = [p for pair in pairs for p in (pair.before, pair.after)]
        with Part(cfg["device"]) as p:
            feats = fx.encode(paths, what)
        assert feats.shape[0] == len(paths)
        out.append(row("d", f"{which} features ({backbone} {what}, fp32) from PNG files", len(pairs), p.seconds,
                       len(pairs) / p.seconds, "pairs/s", p.peak_gib))
        fx.pipeline().close()
    return out


def tiny_models(cfg: dict, data_root: Path, deadline: float) -> list[dict]:
    """The demo's -tiny models trained by their own configs (the demo recipe) on the device."""
    from idcbench.captioner import FitContext
    from idcbench.factory import create_model
    from idcbench.data import load_dataset

    ds = load_dataset("clevr-change", data_root)
    train, val = ds.examples("train"), ds.examples("val")
    out = []
    for name in ("clip4idc-tiny", "clip-diff-tiny", "duda-tiny"):
        torch.manual_seed(0)
        m = create_model(name, **{"loader_workers": cfg["workers"], **cfg["tiny_config"].get(name, {})})
        steps = Steps(cfg["device"], deadline)
        note = ""
        with Part(cfg["device"]) as p:
            try:
                m.fit(train, val, FitContext(workdir=Path(tempfile.mkdtemp()), device=cfg["device"], on_progress=steps))
            except _TimeUp:
                note = "stopped by the time budget; "
        for stage in steps.marks:
            k, rate = steps.rate(stage, 2 if len(steps.marks[stage]) > 6 else 0)
            out.append(row("e", f"{name} {stage} steps on shapes (demo recipe)", k, k / rate, rate, "steps/s",
                           steps.peak.get(stage, 0.0), f"{note}whole fit {p.seconds:.1f} s, {len(steps.marks[stage])} steps"))
    return out


def end_to_end(cfg: dict, data_root: Path, runs: Path, deadline: float) -> list[dict]:
    """`idcbench run clip4idc` in its own process: train both stages, caption test, score CIDEr-D."""
    argv = [sys.executable, "-m", "idcbench", "run", "clip4idc", "--dataset", "clevr-change", "--data-root", str(data_root),
            "--runs-dir", str(runs), "--device", cfg["device"], "-m", "CIDEr-D", "--batch-size", "256",
            "--config", "pretrained=null", "--config", f"backbone={cfg['backbone']}", "--config", "image_cache=true"]
    if cfg["decoder"]:
        argv += ["--config", "decoder=" + json.dumps(cfg["decoder"])]
    for c in cfg["e2e_config"]:
        argv += ["--config", c]
    t0 = time.perf_counter()
    note = ""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=max(10.0, deadline - time.perf_counter()))
        if proc.returncode != 0:
            raise RuntimeError(f"idcbench run exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}")
    except subprocess.TimeoutExpired:
        note = "killed by the time budget; "
    seconds = time.perf_counter() - t0
    out = []
    logs = {p.name: [json.loads(x) for x in p.read_text().splitlines()] for p in runs.rglob("stage*_log.jsonl")}
    metrics = next(runs.rglob("metrics.json"), None)
    cider = _find(json.loads(metrics.read_text()), "CIDEr-D") if metrics else None
    for name, rows in sorted(logs.items()):
        steps, secs = rows[-1]["step"], rows[-1]["seconds"]
        out.append(row("f", f"`idcbench run` {name.split('_')[0]}: steps incl. validation", steps, secs, steps / secs,
                       "steps/s", float("nan"), f"{len(rows)} validations"))
    out.append(row("f", "`idcbench run clip4idc` end to end (train, val, caption test, CIDEr-D)", 1, seconds,
                   1 / seconds, "runs/s", float("nan"), f"{note}test CIDEr-D {cider}"))
    return out


def _find(tree: Any, key: str) -> Any:
    """The first value of `key` anywhere in a JSON tree."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for x in tree:
            if (got := _find(x, key)) is not None:
                return got
    return None


def profile(cfg: dict, data_root: Path) -> tuple[list[dict], str]:
    prof = runpy.run_path(str(ROOT / "scripts" / "profile_tiny_training.py"))
    warmup, steps, profiled = cfg["profile_steps"]
    config = dict(pretrained=None, backbone=cfg["backbone"], loader_workers=cfg["workers"], image_cache=True)
    if cfg["decoder"]:
        config["decoder"] = cfg["decoder"]
    r = prof["profile_fit"]("clip4idc", stage=1, steps=steps, warmup=warmup, profiled=profiled,
                            batch_size=cfg["s1_batch"], device=cfg["device"], data_root=str(data_root), config=config)
    return ([row("g", f"profiled stage-1 steps, batch {cfg['s1_batch']} (see the profile below)", profiled,
                 r["profiled_step_ms"] * profiled / 1e3, r["steps_per_s"], "steps/s", float("nan"))],
            prof["table"](r))


def decode_rate(cfg: dict, root: Path) -> list[dict]:
    from idcbench.images import ImagePipeline, default_workers

    paths = sorted(root.glob("clevr_*.png"))
    workers = default_workers(cfg["device"]) if cfg["workers"] is None else cfg["workers"]
    pipe = ImagePipeline(224, device=cfg["device"], workers=workers)
    with Part(cfg["device"]) as p:
        n = sum(len(x) for x, in pipe.stacked([paths], 256))
    pipe.close()
    return [row("h", f"decode + resize 480x320 PNG -> 224 px, {workers} workers (workers start included)", n,
                p.seconds, n / p.seconds, "images/s", p.peak_gib)]


# ---- the run ------------------------------------------------------------------------------------------------------
def run(cfg: dict, out: Path) -> dict:
    from idcbench.data import Pair

    start = time.perf_counter()
    deadline = start + cfg["budget_s"]
    work = Path(tempfile.mkdtemp(prefix="idcbench-gpu-check-"))
    os.environ["IDCBENCH_CACHE"] = str(work / "cache")  # the decoded-image cache and shapes: fresh, not the user's
    procs = max(1, cpus())
    result: dict[str, Any] = {"torch": torch.__version__, "cpus": procs, "config": cfg, "rows": [], "profile": ""}
    # files first, in forked processes, before CUDA is initialised
    t0 = time.perf_counter()
    (work / "pairs").mkdir()
    in_processes(_write_noise, work / "pairs", cfg["pairs"], cfg["size"], processes=procs)
    (work / "clevr").mkdir()
    in_processes(_write_scenes, work / "clevr", cfg["clevr_pngs"], 480, 320, processes=procs)
    from idcbench.datasets import shapes

    e2e_root = shapes.synthesize(work / "e2e", scenes=cfg["e2e_scenes"], size=cfg["e2e_size"], seed=0,
                                 workers=procs if cfg["e2e_scenes"] >= 300 else 1)
    tiny_root = e2e_root if cfg["tiny_data"] == "e2e" else shapes.ensure_shapes(workers=procs)
    result["files_s"] = time.perf_counter() - t0
    pairs = [Pair(work / "pairs" / f"{i}_b.png", work / "pairs" / f"{i}_a.png") for i in range(cfg["pairs"])]
    result["device"] = torch.cuda.get_device_name(0) if cfg["device"].startswith("cuda") else platform.processor() or "cpu"
    print(f"files written in {result['files_s']:.1f} s; {result['device']}, torch {torch.__version__}, {procs} CPUs",
          flush=True)
    parts: list[tuple[str, float, Callable[[], Any]]] = [  # (name, seconds it needs at least, run)
        ("a", 10, lambda: caption_set(cfg, pairs)),
        ("b files", 25, lambda: train_stages(cfg, pairs, time.perf_counter() + 40, cached=False)),
        ("b cache", 25, lambda: train_stages(cfg, pairs, time.perf_counter() + 40, cached=True)),
        ("d", 15, lambda: features(cfg, pairs)),
        ("e", 30, lambda: tiny_models(cfg, tiny_root, time.perf_counter() + 60)),
        ("f", 45, lambda: end_to_end(cfg, e2e_root, work / "runs", deadline - 25)),
        ("g", 15, lambda: profile(cfg, e2e_root)),
        ("c", 15, lambda: official_agreement(cfg, pairs[: cfg["check_pairs"]])),
        ("h", 5, lambda: decode_rate(cfg, work / "clevr")),
    ]
    for name, need, fn in parts:
        left = deadline - time.perf_counter()
        if left < need:
            result["rows"].append(row(name[0], f"skipped: {left:.0f} s of the budget left, needs ~{need} s", 0,
                                      0.0, float("nan"), "", 0.0))
            continue
        done, t_part = len(result["rows"]), time.perf_counter()
        try:
            got = fn()
            if name == "g":
                got, result["profile"] = got
            result["rows"] += got
        except Exception as e:  # noqa: BLE001 - one failing part must not hide the others
            traceback.print_exc()
            result["rows"].append(row(name[0], f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                                      0, 0.0, float("nan"), "", 0.0))
        gc.collect()  # the part's models and their decoding workers go now
        result.setdefault("part_seconds", {})[name] = round(time.perf_counter() - t_part, 1)
        print(f"({name}: {time.perf_counter() - t_part:.1f} s of wall time)", flush=True)
        for r in result["rows"][done:]:
            print(f"  {r['part']} {r['what']}: {r['rate']:.2f} {r['unit']} ({r['seconds']:.2f} s)", flush=True)
        result["total_s"] = time.perf_counter() - start
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def table(result: dict) -> str:
    lines = [f"device: {result.get('device', '?')}, torch {result['torch']}, {result['cpus']} CPUs; whole check "
             f"{result.get('total_s', 0):.0f} s (files {result.get('files_s', 0):.0f} s)", "",
             "| part | what | n | seconds | rate | goal | met | peak GPU GiB | note |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] == r["peak_gib"] else "–"
        rate = f"{r['rate']:,.2f} {r['unit']}" if r["rate"] == r["rate"] else "–"
        lines.append(f"| {r['part']} | {r['what']} | {r['n']} | {r['seconds']:.2f} | {rate} | {r['goal']} | {met} | "
                     f"{peak} | {r['note']} |")
    if result.get("profile"):
        lines += ["", "(g) " + result["profile"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole check (FULL: 285)")
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a GPU machine, or pass --dry-run", file=sys.stderr)
        return 2
    cfg = dict(DRY if args.dry_run else FULL)
    if args.budget:
        cfg["budget_s"] = args.budget
    result = run(cfg, args.out)
    print(table(result))
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
