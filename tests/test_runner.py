"""`idcbench run` / `idcbench score` end to end on the toy dataset and captioner of `_runner_toy.py`.

Checked against reference computations: predictions = the captioner called directly on every test pair; metrics =
`idcbench.scoring.score` called directly on those predictions; retrieval = a brute-force rank loop. Then the run
lifecycle: reuse, a run killed during captioning / training and resumed, shards + `idcbench score`, and bad input.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import _runner_toy as toy
from _cli import run_cli as cli, run_main
from idcbench.spec import RunSpec

TOY = Path(toy.__file__)
# METEOR's JVM costs seconds per run; the scorer's own tests cover it. PTB tokenization still runs (Java).
METRICS = ["--metrics", "BLEU-4,ROUGE-L,CIDEr-D"]
BASE = ["toy-captioner", "--dataset", "toy-diff", "--batch-size", "2", *METRICS]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    toy.register()
    return toy.make_toy(tmp_path_factory.mktemp("toy") / "data")


def one_run_dir(runs: Path) -> Path:
    dirs = [p for p in runs.glob("*/*/*") if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference_run(data, tmp_path_factory) -> Path:
    """One uninterrupted run; the other tests compare with it."""
    runs = tmp_path_factory.mktemp("ref") / "runs"
    main_args = [*BASE, "--data-root", data, "--runs-dir", runs]
    assert run_main(["run", *main_args]) == 0
    return one_run_dir(runs)


def brute_ranks(sim: np.ndarray, owner: list[int]) -> tuple[list[int], list[int]]:
    t2p, p2t = [], []
    for i, row in enumerate(sim):
        own = row[owner[i]]
        t2p.append(1 + sum(1 for j, s in enumerate(row) if s > own or (s == own and j != owner[i])))
    n = sim.shape[1]
    group = np.array([[max(sim[i, j] for i in range(len(owner)) if owner[i] == g) for j in range(n)] for g in range(n)])
    for j in range(n):
        col = group[:, j]
        p2t.append(1 + sum(1 for g in range(n) if col[g] > col[j] or (col[g] == col[j] and g != j)))
    return t2p, p2t


def test_end_to_end_matches_direct_computation(data, reference_run, tmp_path):
    from idcbench import scoring

    run_dir = reference_run
    ds = toy.ToyDataset.load(data)
    examples = ds.examples("test")
    # The model saved in the run directory, called directly, gives the predictions, in dataset order.
    model = toy.ToyCaptioner.load(run_dir / "model")
    preds = read_jsonl(run_dir / "predictions.jsonl")
    assert [p["id"] for p in preds] == [e.id for e in examples]
    assert [p["caption"] for p in preds] == model.caption([e.pair for e in examples])
    # Training ran with the model's recipe: its threshold is the one fit() computes from the train split.
    semantic = sorted(float(toy._diff(e.pair).max()) for e in ds.examples("train") if e.kind == "semantic")
    assert model.threshold == min(100.0, semantic[0] / 2, semantic[1] / 2, semantic[2] / 2)
    assert sorted(p.name for p in (run_dir / "train").iterdir()) == ["epoch1.json", "epoch2.json", "epoch3.json",
                                                                      "val_log.jsonl"]
    # Metrics = the scorer run directly on those predictions, every subset.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = scoring.score({p["id"]: p["caption"] for p in preds}, ds.references("test"), ds.subsets("test"),
                           ["BLEU-4", "ROUGE-L", "CIDEr-D"],
                           tags={e.id: dict(e.tags) for e in examples})
    scoring.save_report(report, tmp_path / "direct")
    direct = json.loads((tmp_path / "direct" / "metrics.json").read_text())
    assert metrics["subsets"] == direct["subsets"]
    assert set(metrics["subsets"]) == {"total", "semantic", "distractor"}
    assert (run_dir / "per_sample.jsonl").read_text() == (tmp_path / "direct" / "per_sample.jsonl").read_text()
    assert metrics["run"]["n"] == len(examples) and metrics["run"]["world_size"] == 1
    # Retrieval on the semantic pairs only, every reference a text query: brute-force ranks.
    sem = [e for e in examples if e.kind == "semantic"]
    texts = [(r, j) for j, e in enumerate(sem) for r in e.references]
    p = model.embed_pairs([e.pair for e in sem])
    t = model.embed_texts([r for r, _ in texts])
    sim = (t / np.linalg.norm(t, axis=1, keepdims=True)) @ (p / np.linalg.norm(p, axis=1, keepdims=True)).T
    t2p, p2t = brute_ranks(sim.astype(np.float32).astype(np.float64), [j for _, j in texts])
    r = metrics["retrieval"]
    assert (r["n_pairs"], r["n_captions"]) == (len(sem), len(texts))
    assert r["t2p_R@1"] == pytest.approx(100 * np.mean(np.array(t2p) <= 1))
    assert r["t2p_R@5"] == pytest.approx(100 * np.mean(np.array(t2p) <= 5))
    assert r["p2t_R@1"] == pytest.approx(100 * np.mean(np.array(p2t) <= 1))
    assert r["t2p_MedR"] == pytest.approx(np.median(t2p)) and r["p2t_MeanR"] == pytest.approx(np.mean(p2t))
    # The recorded spec hashes to the directory name; the env is recorded.
    saved = json.loads((run_dir / "run_spec.json").read_text())
    spec = RunSpec.from_dict(saved["spec"])
    assert spec.hash == saved["spec_hash"] and run_dir.name == spec.short_hash
    assert spec.train and spec.checkpoint is None and saved["world_size"] == 1
    env = json.loads((run_dir / "env.json").read_text())
    assert {"idcbench", "git_commit", "torch", "open_clip", "pycocoevalcap", "java", "device"} <= set(env)
    import torch

    isa = env["cpu_isa"]  # what tells machines apart whose trained results may differ in the last digit
    assert isa["aten"] == torch.backends.cpu.get_cpu_capability() and isa["cpu"]
    # MKL's and oneDNN's ISAs as their verbose modes report them; None where a probe prints nothing (under load)
    assert set(isa) == {"cpu", "aten", "mkl", "onednn", "env"}
    assert all(isa[k] is None or isinstance(isa[k], str) and isa[k] for k in ("mkl", "onednn"))
    assert (run_dir / "DONE").exists()


def test_rerun_is_reused(data, reference_run, capsys):
    runs = reference_run.parents[2]
    def stamps():  # every file of the run (the lock file records its holder: not part of the run)
        return {p.name: p.stat().st_mtime_ns for p in reference_run.iterdir() if p.is_file() and p.name != ".lock"}

    before = stamps()
    code, out, _ = cli(capsys, "run", *BASE, "--data-root", data, "--runs-dir", runs)
    assert code == 0 and "reused" in out
    assert stamps() == before
    # Another seed or config is another run directory.
    code, _, _ = cli(capsys, "run", *BASE, "--data-root", data, "--runs-dir", runs, "--config", "margin=0.5")
    assert code == 0 and len(list(runs.glob("*/*/*"))) == 2


def test_force_redoes(data, tmp_path, capsys, reference_run):
    args = ["run", *BASE, "--data-root", data, "--runs-dir", tmp_path]
    assert cli(capsys, *args)[0] == 0
    run_dir = one_run_dir(tmp_path)
    (run_dir / "predictions.jsonl").write_text("garbage that --force must not read\n")
    code, out, _ = cli(capsys, *args, "--force")
    assert code == 0 and "reused" not in out
    assert (run_dir / "predictions.jsonl").read_bytes() == (reference_run / "predictions.jsonl").read_bytes()
    # Other metrics on a finished run: scored from the saved predictions and merged into the scores already there
    # (nothing computed before is lost), the model is not trained again.
    model_mtime = (run_dir / "model" / "toy.json").stat().st_mtime_ns
    before = json.loads((run_dir / "metrics.json").read_text())
    rows_before = [json.loads(line) for line in (run_dir / "per_sample.jsonl").read_text().splitlines()]
    code, out, _ = cli(capsys, *[a for a in args if a not in METRICS], "--metrics", "BLEU-1")
    assert code == 0 and "reused" not in out
    after = json.loads((run_dir / "metrics.json").read_text())
    for name, sub in before["subsets"].items():
        assert list(after["subsets"][name]["metrics"]) == ["BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D"]
        assert {m: after["subsets"][name]["metrics"][m] for m in sub["metrics"]} == sub["metrics"]
    rows = [json.loads(line) for line in (run_dir / "per_sample.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r["scores"].items() if k != "BLEU-1"} for r in rows] == [r["scores"] for r in rows_before]
    # BLEU-1 as a run that asked for it alone computes it
    alone = tmp_path / "alone"
    base = [a for a in BASE if a not in METRICS]
    assert cli(capsys, "run", *base, "--data-root", data, "--runs-dir", alone, "--metrics", "BLEU-1")[0] == 0
    alone_metrics = json.loads((one_run_dir(alone) / "metrics.json").read_text())
    assert {s: v["metrics"] for s, v in alone_metrics["subsets"].items()} == {
        s: {"BLEU-1": v["metrics"]["BLEU-1"]} for s, v in after["subsets"].items()}
    assert (run_dir / "model" / "toy.json").stat().st_mtime_ns == model_mtime
    assert (run_dir / "predictions.jsonl").read_bytes() == (reference_run / "predictions.jsonl").read_bytes()
    # Metrics it already holds: reused, metrics.json untouched.
    code, out, _ = cli(capsys, *[a for a in args if a not in METRICS], "--metrics", "CIDEr-D")
    assert code == 0 and "reused" in out
    assert json.loads((run_dir / "metrics.json").read_text()) == after


def _spawn(args: list, env_extra: dict) -> subprocess.Popen:
    env = {**os.environ, **env_extra}
    return subprocess.Popen([sys.executable, str(TOY), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_lines(proc: subprocess.Popen, runs: Path, n: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        files = list(runs.glob("*/*/*/predictions.jsonl"))
        if files and len(files[0].read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no predictions written in time")


def test_killed_during_captioning_resumes_identically(data, tmp_path, capsys, reference_run):
    args = ["run", *BASE, "--data-root", data, "--runs-dir", tmp_path]
    # SIGTERM (a scheduler's limit): one line, exit 2
    proc = _spawn(args, {"IDCBENCH_DEBUG_BATCH_DELAY": "0.4"})
    _wait_lines(proc, tmp_path, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "terminated" in _one_line_error(proc.returncode, err)
    # SIGKILL: no last word; the same command resumes
    proc = _spawn(args, {"IDCBENCH_DEBUG_BATCH_DELAY": "0.4"})
    _wait_lines(proc, tmp_path, 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = one_run_dir(tmp_path)
    partial = run_dir / "predictions.jsonl"
    n = len(partial.read_text().splitlines())
    assert 6 <= n < 17 and not (run_dir / "DONE").exists()
    with open(partial, "a") as f:  # a line torn by the kill
        f.write('{"id": "test_9", "capt')
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    for name in ("predictions.jsonl", "per_sample.jsonl"):
        assert (run_dir / name).read_bytes() == (reference_run / name).read_bytes()
    m, ref = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference_run))
    assert m["subsets"] == ref["subsets"] and m["retrieval"] == ref["retrieval"]


def test_killed_during_training_resumes(data, tmp_path, capsys, reference_run):
    args = ["run", *BASE, "--data-root", data, "--runs-dir", tmp_path]
    proc = _spawn(args, {"TOY_EXIT_AFTER_EPOCH": "2"})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 9, err
    run_dir = one_run_dir(tmp_path)
    assert sorted(p.name for p in (run_dir / "train").iterdir()) == ["epoch1.json", "epoch2.json", "val_log.jsonl"]
    assert not (run_dir / "model").exists() and not (run_dir / "predictions.jsonl").exists()
    assert cli(capsys, *args)[0] == 0
    # the cost counts the training of the killed process too: 3 epochs of the toy's 10 s, from its curve
    cost = json.loads((run_dir / "cost.json").read_text())
    assert cost["train_seconds"] == 3 * toy.TOY_EPOCH_SECONDS and cost["train_steps"] == 3 * toy.SPLIT_SIZES["train"]
    assert (run_dir / "predictions.jsonl").read_bytes() == (reference_run / "predictions.jsonl").read_bytes()
    assert (run_dir / "model" / "toy.json").read_text() == (reference_run / "model" / "toy.json").read_text()


def test_shards_then_score_equal_unsharded(data, tmp_path, capsys, reference_run):
    args = ["run", *BASE, "--data-root", data, "--runs-dir", tmp_path, "--num-shards", "3"]
    code, out, err = cli(capsys, *args, "--shard", "1")
    assert code == 2 and "run shard 0 first" in err  # shard 0 trains; other shards need its model
    assert cli(capsys, *args, "--shard", "0")[0] == 0
    run_dir = one_run_dir(tmp_path)
    assert cli(capsys, *args, "--shard", "2")[0] == 0
    assert not (run_dir / "DONE").exists()
    code, _, err = cli(capsys, "score", run_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "shard 1 of 3" in err and "predictions.shard-1-of-3.jsonl" in err and "shard 2" not in err
    assert cli(capsys, *args, "--shard", "1")[0] == 0
    code, out, err = cli(capsys, "score", run_dir)
    assert code == 0, err
    assert not list(run_dir.glob("predictions.shard-*"))
    assert run_dir.name == reference_run.name  # sharding is not part of the spec
    for name in ("predictions.jsonl", "per_sample.jsonl"):
        assert (run_dir / name).read_bytes() == (reference_run / name).read_bytes()
    m, ref = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference_run))
    assert m["subsets"] == ref["subsets"] and m["retrieval"] == ref["retrieval"] and m["run"]["num_shards"] == 3


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_names_and_paths(data, tmp_path, capsys):
    base = ["--data-root", data, "--runs-dir", tmp_path]
    line = _one_line_error(*cli(capsys, "run", "toy-captionr", "--dataset", "toy-diff", *base)[::2])
    assert "did you mean 'toy-captioner'" in line
    line = _one_line_error(*cli(capsys, "run", "toy-captioner", "--dataset", "toy-dif", *base)[::2])
    assert "did you mean 'toy-diff'" in line
    line = _one_line_error(*cli(capsys, "run", "toy-captioner", "--dataset", "toy-diff", "--data-root",
                                tmp_path / "nowhere", "--runs-dir", tmp_path)[::2])
    assert "nowhere" in line
    line = _one_line_error(*cli(capsys, "run", *BASE, *base, "--split", "dev")[::2])
    assert "unknown split" in line
    line = _one_line_error(*cli(capsys, "run", *BASE, *base, "--init", tmp_path / "none.pt")[::2])
    assert "not found" in line
    line = _one_line_error(*cli(capsys, "run", *BASE, *base, "--init", data, "--train")[::2])
    assert f"--init {data}" in line  # --init --train fine-tunes: the folder must be a checkpoint to start from
    line = _one_line_error(*cli(capsys, "run", *BASE, *base, "--config", "epochs")[::2])
    assert "KEY=VALUE" in line
    line = _one_line_error(*cli(capsys, "score", tmp_path)[::2])
    assert "not a run directory" in line
    assert not list(tmp_path.glob("*/*/*"))  # nothing was created by failed runs


def test_wrong_or_broken_checkpoint(data, tmp_path, capsys):
    base = ["--data-root", data, "--runs-dir", tmp_path]
    assert cli(capsys, "run", "toy-other", "--dataset", "toy-diff", *METRICS, *base)[0] == 0
    other_model = one_run_dir(tmp_path) / "model"
    line = _one_line_error(*cli(capsys, "run", *BASE, *base, "--init", other_model)[::2])
    assert "toy-other" in line and "toy-captioner" in line
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "toy.json").write_text(json.dumps({"config": {}}))  # a checkpoint missing a tensor/key
    line = _one_line_error(*cli(capsys, "run", *BASE, *base, "--init", broken)[::2])
    assert "not a checkpoint of model 'toy-captioner'" in line
    (broken / "toy.json").write_text(json.dumps({"config": {}, "threshold": 0.25}))  # a good one evaluates
    code, _, err = cli(capsys, "run", *BASE, *base, "--init", broken)
    assert code == 0, err


def test_unreadable_image_and_full_disk_keep_saved_work(data, tmp_path, capsys, reference_run, monkeypatch):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data, root)
    args = ["run", *BASE, "--data-root", root, "--runs-dir", tmp_path / "runs"]
    victim = root / "images" / "test_9_b.png"
    good = victim.read_bytes()
    victim.write_bytes(b"not a png")
    line = _one_line_error(*cli(capsys, *args)[::2])
    assert "test_9_b.png" in line
    run_dir = one_run_dir(tmp_path / "runs")
    saved = (run_dir / "predictions.jsonl").read_text()
    assert len(saved.splitlines()) == 8  # the four batches before the broken pair
    assert saved == "".join((reference_run / "predictions.jsonl").read_text().splitlines(True)[:8])
    victim.write_bytes(good)

    import idcbench.run.caption as caption

    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(caption.os, "fsync", fsync)
    line = _one_line_error(*cli(capsys, *args)[::2])
    assert "no space left" in line
    assert (run_dir / "predictions.jsonl").read_text().startswith(saved)  # the full disk lost nothing saved
    monkeypatch.setattr(caption.os, "fsync", real_fsync)
    assert cli(capsys, *args)[0] == 0
    assert (run_dir / "predictions.jsonl").read_bytes() == (reference_run / "predictions.jsonl").read_bytes()


def test_two_identical_runs_at_once_do_not_corrupt_the_run_dir(data, tmp_path, reference_run):
    args = ["run", *BASE, "--data-root", data, "--runs-dir", tmp_path / "r"]
    procs = [_spawn(args, {"IDCBENCH_DEBUG_BATCH_DELAY": "0.05"}) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    run_dir = one_run_dir(tmp_path / "r")
    assert (run_dir / "predictions.jsonl").read_bytes() == (reference_run / "predictions.jsonl").read_bytes()
    assert any("in use by process" in o + e for o, e in outs)  # the second one waited for the first
