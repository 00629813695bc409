"""Step times of the tiny CLIP4IDC training loops (stage 1 and stage 2) on `shapes`, optionally with torch.profiler.

Measures what `idcbench run clip4idc-tiny` spends per optimizer step, through the real `fit` (the progress callback
marks the steps), so the numbers are the training loop's and not a re-implementation's.

    python scripts/profile_tiny_training.py --stage 1 --steps 30 --batch-size 64 --threads 2
    python scripts/profile_tiny_training.py --stage 2 --steps 30 --batch-size 64 --profile   # + top ops table
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", type=int, choices=(1, 2), default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of the statistics")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="clip4idc-tiny")
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of the timed steps")
    ap.add_argument("--shapes", action="store_true", help="with --profile: group the table by input shapes")
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()

    import torch

    from idcbench.captioner import FitContext
    from idcbench.factory import create_model
    from idcbench.data import load_dataset

    torch.set_num_threads(args.threads)
    ds = load_dataset("shapes")
    train, val = ds.examples("train"), ds.examples("val")[:8]
    group = {"max_steps": args.steps, "batch_size": args.batch_size, "epochs": 100, "val_max_pairs": 8}
    model = create_model(args.model, stages=[args.stage], **{f"stage{args.stage}": group})
    marks: list[float] = []
    prof = None

    def on_progress(stage: str, step: int, total: int, logs: dict) -> None:
        nonlocal prof
        if stage.endswith("-val"):
            return
        marks.append(time.perf_counter())
        if args.profile and step == args.warmup:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        model.fit(train, val, FitContext(workdir=Path(work), on_progress=on_progress))
    total = time.perf_counter() - t0
    if prof is not None:
        prof.__exit__(None, None, None)
    steps = [b - a for a, b in zip(marks, marks[1:])][args.warmup:]
    print(f"{args.model} stage {args.stage}: batch {args.batch_size}, {args.threads} threads, {len(steps)} timed steps: "
          f"median {statistics.median(steps):.4f} s/step, mean {statistics.fmean(steps):.4f}, "
          f"setup+val {total - (marks[-1] - marks[0]):.1f} s, total {total:.1f} s")
    if prof is not None:
        print(prof.key_averages(group_by_input_shape=args.shapes).table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
