"""`idcbench run` end to end with the real pieces: the `shapes` dataset and the tiny CLIP4IDC (both stages).

A small `shapes` folder (40 scenes: 8 test pairs) and a few training steps keep it CPU-sized. Checked: predictions
equal the saved model's own captions, metrics equal the scorer run directly, retrieval equals `evaluate_retrieval`;
a second run is reused; an --init run killed while captioning resumes to the same bytes; torchrun with 2 processes
(gloo) gives the same predictions and metrics as one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _cli import free_port, run_cli as _cli

pytestmark = pytest.mark.slow

METRICS = "BLEU-4,ROUGE-L,CIDEr-D"
TINY = [  # a CPU-sized recipe: one optimisation step per stage, short captions
    "pretrained=null", "stage1.epochs=1", "stage1.max_steps=1", "stage1.batch_size=8", "stage1.val_max_pairs=8",
    "stage2.epochs=1", "stage2.max_steps=1", "stage2.batch_size=8", "stage2.val_max_pairs=8",
    "decoding.max_len=12", "cache_images=false",
]


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    import torch

    torch.set_num_threads(1)  # the machine is shared: one thread is several times faster than two here
    from idcbench.datasets import shapes

    root = tmp_path_factory.mktemp("shapes") / "shapes"
    shapes.synthesize(root, scenes=40, size=64, seed=0, overwrite=True, workers=1)
    return root


def _args(root: Path, runs: Path, *extra) -> list:
    config = [x for item in TINY for x in ("--config", item)]
    return ["run", "clip4idc-tiny", "--dataset", "shapes", "--data-root", root, "--runs-dir", runs,
            "--batch-size", "2", "--metrics", METRICS, "--device", "cpu", *config, *extra]


def _run_dir(runs: Path) -> Path:
    (d,) = [p for p in runs.glob("shapes/clip4idc-tiny/*") if p.is_dir()]
    return d


def test_shapes_clip4idc_tiny_run_reuse_kill_resume_torchrun(shapes_root, tmp_path, capsys):
    from idcbench import rundir, scoring
    from idcbench.data import load_dataset
    from idcbench.metrics.retrieval import evaluate_retrieval
    from idcbench.models.clip4idc.captioner import Clip4IDC
    from idcbench.run.score import retrieval_examples

    # 1. train (both stages) + caption + score
    code, out, err = _cli(capsys, *_args(shapes_root, tmp_path / "a"))
    assert code == 0, err
    run = _run_dir(tmp_path / "a")
    assert (run / "DONE").exists() and (run / "model" / "model.pt").exists()
    ds = load_dataset("shapes", shapes_root)
    examples = ds.examples("test")
    model = Clip4IDC.load(run / "model")
    preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [e.id for e in examples]
    assert [p["caption"] for p in preds] == model.caption([e.pair for e in examples])
    metrics = json.loads((run / "metrics.json").read_text())
    report = scoring.score({p["id"]: p["caption"] for p in preds}, ds.references("test"), ds.subsets("test"),
                           METRICS.split(","))
    scoring.save_report(report, tmp_path / "direct")
    assert metrics["subsets"] == json.loads((tmp_path / "direct" / "metrics.json").read_text())["subsets"]
    assert {"total", "semantic", "distractor"} <= set(metrics["subsets"])
    semantic = retrieval_examples(examples)
    assert semantic and all(e.kind == "semantic" for e in semantic)
    direct = evaluate_retrieval(model, semantic, batch_size=2)
    assert {k: metrics["retrieval"][k] for k in direct} == pytest.approx(direct)
    # the per-pair ranks behind them (what the leaderboard resamples): one row per semantic pair, same R@1
    rows = [json.loads(line) for line in (run / rundir.RETRIEVAL_FILE).read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(e.id for e in semantic)
    t2p = [rank for r in rows for rank in r["t2p"]]
    assert len(t2p) == direct["n_captions"]
    assert 100.0 * sum(rank <= 1 for rank in t2p) / len(t2p) == pytest.approx(direct["t2p_R@1"])
    assert 100.0 * sum(r["p2t"] <= 1 for r in rows) / len(rows) == pytest.approx(direct["p2t_R@1"])

    # 2. the same command again: reused, nothing rewritten
    def written():  # the run's files; the lock file is taken again by every process that opens the run
        return {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file() and p.name != ".lock"}

    before = written()
    code, out, _ = _cli(capsys, *_args(shapes_root, tmp_path / "a"))
    assert code == 0 and "reused" in out
    assert written() == before

    # 3. evaluate the saved model with --init in a process killed while captioning, then resume
    args_b = _args(shapes_root, tmp_path / "b", "--init", run / "model")
    env = {**os.environ, "IDCBENCH_DEBUG_BATCH_DELAY": "1.0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "idcbench", *map(str, args_b)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        files = list((tmp_path / "b").glob("shapes/clip4idc-tiny/*/predictions.jsonl"))
        if files and len(files[0].read_text().splitlines()) >= 2:
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_b = _run_dir(tmp_path / "b")
    assert 2 <= len((run_b / "predictions.jsonl").read_text().splitlines()) < len(examples)
    assert not (run_b / "DONE").exists()
    code, _, err = _cli(capsys, *args_b)
    assert code == 0, err
    assert (run_b / "predictions.jsonl").read_bytes() == (run / "predictions.jsonl").read_bytes()
    assert (run_b / "per_sample.jsonl").read_bytes() == (run / "per_sample.jsonl").read_bytes()
    m_b = json.loads((run_b / "metrics.json").read_text())
    assert m_b["subsets"] == metrics["subsets"] and m_b["retrieval"] == metrics["retrieval"]

    # 4. torchrun, 2 processes on the CPU (gloo): same predictions and metrics as one process
    torchrun = Path(sys.executable).with_name("torchrun")
    args_c = _args(shapes_root, tmp_path / "c", "--init", run / "model")
    res = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                          str(free_port()), "-m", "idcbench", *map(str, args_c)],
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    run_c = _run_dir(tmp_path / "c")
    assert run_c.name == run_b.name
    assert (run_c / "predictions.jsonl").read_bytes() == (run / "predictions.jsonl").read_bytes()
    m_c = json.loads((run_c / "metrics.json").read_text())
    assert m_c["subsets"] == metrics["subsets"] and m_c["run"]["world_size"] == 2
    assert m_c["retrieval"] == pytest.approx(metrics["retrieval"])


def test_torchrun_training_matches_one_process(shapes_root, tmp_path, capsys):
    """DDP training (gloo, 2 ranks, negatives gathered, checkpoints written by rank 0 and read by all) ends in the same
    run directory name and the same captions as training in one process."""
    code, _, err = _cli(capsys, *_args(shapes_root, tmp_path / "one"))
    assert code == 0, err
    torchrun = Path(sys.executable).with_name("torchrun")
    res = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                          str(free_port()), "-m", "idcbench", *map(str, _args(shapes_root, tmp_path / "two"))],
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    one, two = _run_dir(tmp_path / "one"), _run_dir(tmp_path / "two")
    assert one.name == two.name
    assert (two / "predictions.jsonl").read_bytes() == (one / "predictions.jsonl").read_bytes()
    assert json.loads((two / "metrics.json").read_text())["run"]["world_size"] == 2
