"""Captioning throughput of the run's sharded captioning path: 1 process against `torchrun --nproc_per_node 2`.

The work is the runner's own: `caption_examples` over the strided shard of each rank (predictions appended and
fsync'ed per batch), then rank 0 merges. The model is the tiny CLIP4IDC with a random backbone (`pretrained=null`,
saved once and reloaded by every process, as `idcbench run --init` does), so every caption runs the full 32 decoding
steps: a fixed amount of work. Images: a 100-scene `shapes` folder (N_PAIRS pairs of the train split).

Each measurement runs in fresh processes; the worker reports its own captioning time (imports and model loading
excluded) and pairs/s is recorded in the benchmark's extra_info. Run: ``make bench`` or
``.venv/bin/python -m pytest benchmarks/bench_runner.py --benchmark-only -s``. The machine's cores are shared with
whatever else runs, so compare the rows of one session only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

N_PAIRS = 96
BATCH = 16


def _worker(model_dir: str, data_root: str, out: str) -> None:
    """One rank: caption its strided shard of the first N_PAIRS train pairs; rank 0 merges and writes the timing."""
    import torch

    from idcbench.data import load_dataset
    from idcbench.distributed import barrier, destroy_process_group, dist_info, init_process_group, shard
    from idcbench.models.clip4idc.captioner import Clip4IDC
    from idcbench.run.caption import caption_examples
    from idcbench.rundir import merge_predictions
    from idcbench.run.reporter import Reporter

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    info = dist_info()
    init_process_group(info, "cpu")
    examples = load_dataset("shapes", data_root).examples("train")[:N_PAIRS]
    model = Clip4IDC.load(Path(model_dir))
    run_dir = Path(out).parent
    own = run_dir / (f"predictions.rank{info.rank}.jsonl" if info.distributed else "predictions.jsonl")
    barrier()
    t0 = time.perf_counter()
    caption_examples(model, shard(examples, info.rank, info.world_size), own, batch_size=BATCH, done={},
                     reporter=Reporter())
    barrier()
    if info.is_main:
        merge_predictions(run_dir, [e.id for e in examples])
        seconds = time.perf_counter() - t0
        Path(out).write_text(json.dumps({"seconds": seconds, "pairs": len(examples), "world_size": info.world_size}))
    destroy_process_group()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    from idcbench.factory import create_model
    from idcbench.datasets import shapes

    root = tmp_path_factory.mktemp("bench_runner")
    shapes.synthesize(root / "shapes", scenes=100, size=64, seed=0, overwrite=True, workers=1)
    torch.manual_seed(0)
    create_model("clip4idc-tiny", pretrained=None).save(root / "model")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(setup: Path, name: str, procs: int, threads: int) -> dict:
    work = setup / name
    work.mkdir(exist_ok=True)
    for f in work.glob("predictions*"):
        f.unlink()
    out = work / "timing.json"
    args = [__file__, "--worker", str(setup / "model"), str(setup / "shapes"), str(out)]
    env = {**os.environ, "BENCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    if procs == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", str(procs), "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port()), *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    timing = json.loads(out.read_text())
    timing["pairs_per_s"] = timing["pairs"] / timing["seconds"]
    timing["predictions"] = (work / "predictions.jsonl").read_text()
    return timing


@pytest.mark.parametrize("procs,threads", [(1, 1), (1, 2), (2, 1)], ids=["1proc-1thread", "1proc-2threads", "2procs-1thread"])
def test_bench_caption_throughput(benchmark, setup, procs, threads):
    result = {}

    def once():
        result.update(_measure(setup, f"p{procs}t{threads}", procs, threads))

    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update({k: result[k] for k in ("pairs", "seconds", "pairs_per_s", "world_size")})
    print(f"\ncaptioning {procs} process(es) x {threads} thread(s): {result['pairs_per_s']:.2f} pairs/s "
          f"({result['pairs']} pairs in {result['seconds']:.1f} s)")
    reference = setup / "reference_predictions.jsonl"
    if reference.exists():  # every configuration gives the same predictions
        assert result["predictions"] == reference.read_text()
    else:
        reference.write_text(result["predictions"])


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(*sys.argv[2:5])
