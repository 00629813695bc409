"""Where a CLIP4IDC training step's time goes, measured through the real `fit` (the progress callback marks the steps).

Runs `--steps` steps of one stage on `shapes` (or `--data-root DIR`, any CLEVR-Change layout) and prints one Markdown
table: steps/s without the profiler, then torch.profiler's split of a step into the phases the training loop marks
(``idcbench.data`` waiting for the step's images, ``.forward``, ``.backward``, ``.optimizer``, ``.progress`` reading
the loss) with what they contain (``idcbench.decode`` / ``.resize`` when images are decoded in this process,
``.h2d``, ``.normalize``), the rest as Python overhead; on CUDA the device time of each phase too. Decoding and
resizing one image are also timed on their own (workers do it in other processes, out of the profiler's sight).

    python scripts/profile_tiny_training.py --stage 1 --steps 30 --batch-size 64 --threads 2
    python scripts/profile_tiny_training.py --stage 1 --config stage1.freeze_intra=false   # images every step
    python scripts/profile_tiny_training.py --device cuda --model clip4idc --config pretrained=null --data-root DIR
    python scripts/profile_tiny_training.py --stage 2 --ops 25                             # + the top ops
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PHASES = ("data", "forward", "backward", "optimizer", "progress")
INNER = {"decode": "data", "resize": "data", "h2d": "data", "normalize": "forward"}  # range -> the phase it is in


def _device_us(event: Any) -> float:
    return float(getattr(event, "device_time_total", getattr(event, "cuda_time_total", 0.0)) or 0.0)


def profile_fit(model: str = "clip4idc-tiny", *, stage: int = 1, steps: int = 20, warmup: int = 5, profiled: int = 10,
                batch_size: int = 64, device: str = "cpu", data_root: str | None = None,
                config: dict[str, Any] | None = None, ops: int = 0) -> dict[str, Any]:
    """Run `warmup + steps + profiled` steps of `stage`; time `steps` of them, profile the last `profiled`."""
    import torch

    from idcbench.captioner import FitContext
    from idcbench.factory import create_model
    from idcbench.data import load_dataset
    from idcbench.images import decode_resized

    ds = load_dataset("clevr-change" if data_root else "shapes", data_root)
    train = ds.examples("train")
    total = warmup + steps + profiled
    group = {"max_steps": total, "batch_size": batch_size, "epochs": 1000, "early_stop": None}
    cfg = dict(config or {})
    cfg[f"stage{stage}"] = {**group, **cfg.get(f"stage{stage}", {})}
    m = create_model(model, stages=[stage], **cfg)
    cuda = device.startswith("cuda")
    marks: list[float] = []
    prof: torch.profiler.profile | None = None

    def on_progress(name: str, step: int, n: int, logs: dict) -> None:
        nonlocal prof
        if name != f"stage{stage}":
            return
        if cuda and step == total:
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        if step == warmup + steps:
            activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
            prof = torch.profiler.profile(activities=activities)
            prof.__enter__()
        elif step == total and prof is not None:
            prof.__exit__(None, None, None)

    with tempfile.TemporaryDirectory() as work:  # no validation set: only steps between the marks
        m.fit(train, [], FitContext(workdir=Path(work), device=device, on_progress=on_progress))
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    timed = gaps[warmup: warmup + steps] if len(gaps) >= warmup + steps else gaps
    step_s = statistics.median(timed)
    n_prof = max(1, len(marks) - (warmup + steps))
    prof_wall = (marks[-1] - marks[warmup + steps - 1]) if len(marks) > warmup + steps else float("nan")
    phases: dict[str, dict[str, float]] = {}
    kernels = aten = busy = 0.0
    if prof is not None:
        averages = prof.key_averages()
        aten = sum(ev.count for ev in averages if ev.key.startswith("aten::")) / n_prof
        on_gpu = [ev for ev in averages if getattr(ev, "device_type", None) == torch.autograd.DeviceType.CUDA]
        kernels = sum(ev.count for ev in on_gpu if not ev.key.startswith(("Memcpy", "Memset"))) / n_prof
        busy = sum(float(getattr(ev, "self_device_time_total", 0.0) or 0.0) for ev in on_gpu) / 1e3 / n_prof
        for ev in averages:
            if ev.key.startswith("idcbench."):
                name = ev.key.removeprefix("idcbench.")
                phases[name] = {"cpu_ms": ev.cpu_time_total / 1e3 / n_prof, "device_ms": _device_us(ev) / 1e3 / n_prof,
                                "calls": ev.count / n_prof}
    # decoding and resizing one training image on its own (what each worker does per image)
    paths = list(dict.fromkeys(p for e in train[:32] for p in (e.before, e.after)))
    size = int(getattr(m, "image_size", 224))
    from PIL import Image

    from idcbench.data import load_image

    t0 = time.perf_counter()
    imgs = [load_image(p) for p in paths]
    t1 = time.perf_counter()
    for img in imgs:
        img.resize((size, size), Image.BICUBIC)
    t2 = time.perf_counter()
    for p in paths[:8]:
        decode_resized(p, size)
    return {
        "model": model, "stage": stage, "batch_size": batch_size, "device": device,
        "threads": torch.get_num_threads(), "steps_per_s": 1.0 / step_s, "step_ms": step_s * 1e3,
        "profiled_step_ms": prof_wall / n_prof * 1e3, "phases": phases, "aten_ops_per_step": aten,
        "kernels_per_step": kernels, "gpu_busy_ms": busy,
        "decode_ms_per_image": (t1 - t0) / len(paths) * 1e3, "resize_ms_per_image": (t2 - t1) / len(paths) * 1e3,
        "image": f"{imgs[0].size[0]}x{imgs[0].size[1]} -> {size}px",
        "ops": prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total",
                                         row_limit=ops) if prof is not None and ops else "",
    }


def table(r: dict[str, Any]) -> str:
    """The profile as Markdown: each phase's ms per step (CPU; device on CUDA) and share of the profiled step."""
    step = r["profiled_step_ms"]
    cuda = r["device"].startswith("cuda")
    # GPU: the device time of the kernels each range launched from this thread (backward runs on autograd's)
    head = "| phase | ms/step (host) | % of step |" + (" ms/step (GPU, this thread) |" if cuda else "")
    lines = [f"{r['model']} stage {r['stage']}, batch {r['batch_size']}, {r['device']}, {r['threads']} threads: "
             f"{r['steps_per_s']:.2f} steps/s ({r['step_ms']:.1f} ms/step; {step:.1f} ms under the profiler, "
             f"{r['aten_ops_per_step']:.0f} aten ops"
             + (f", {r['kernels_per_step']:.0f} kernels, GPU busy {r['gpu_busy_ms']:.1f} ms" if cuda else "") + "); "
             f"one image {r['image']}: decode {r['decode_ms_per_image']:.2f} ms, resize {r['resize_ms_per_image']:.2f} ms",
             "", head, "|---|---|---|" + ("---|" if cuda else "")]
    accounted = 0.0
    for name in PHASES:
        p = r["phases"].get(name)
        if p is None:
            continue
        accounted += p["cpu_ms"]
        lines.append(f"| {name} | {p['cpu_ms']:.2f} | {100 * p['cpu_ms'] / step:.0f} % |"
                     + (f" {p['device_ms']:.2f} |" if cuda else ""))
        for inner, parent in INNER.items():
            q = r["phases"].get(inner)
            if q is not None and parent == name:
                lines.append(f"| &nbsp;&nbsp;{inner} | {q['cpu_ms']:.2f} | {100 * q['cpu_ms'] / step:.0f} % |"
                             + (f" {q['device_ms']:.2f} |" if cuda else ""))
    lines.append(f"| other (Python between phases) | {step - accounted:.2f} | {100 * (step - accounted) / step:.0f} % |"
                 + (" |" if cuda else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="clip4idc-tiny")
    ap.add_argument("--stage", type=int, choices=(1, 2), default=1)
    ap.add_argument("--steps", type=int, default=20, help="timed steps (without the profiler)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--profiled", type=int, default=10, help="steps under torch.profiler")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-root", default=None, help="a CLEVR-Change-layout folder instead of shapes")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="model config (a.b=1)")
    ap.add_argument("--ops", type=int, default=0, help="also print the top N ops of the profiled steps")
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    args = ap.parse_args(argv)

    import torch

    from idcbench.run.request import parse_config

    torch.set_num_threads(args.threads)
    r = profile_fit(args.model, stage=args.stage, steps=args.steps, warmup=args.warmup, profiled=args.profiled,
                    batch_size=args.batch_size, device=args.device, data_root=args.data_root,
                    config=parse_config(args.config), ops=args.ops)
    print(table(r))
    if r["ops"]:
        print(r["ops"])
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in r.items() if k != "ops"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
