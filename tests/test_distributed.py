"""Rank / world size discovery, strided shards and their merge, and `torchrun --nproc_per_node 2` (gloo, CPU) giving
the same run directory content as one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import _runner_toy as toy
from _cli import free_port, run_main
from idcbench.distributed import DistInfo, backend_for, dist_info, merge_ordered, shard
from idcbench.errors import UserError


def test_dist_info_from_launchers():
    assert dist_info({}) == DistInfo(0, 1, 0, "none")
    assert dist_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == DistInfo(3, 4, 1, "torchrun")
    assert dist_info({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}) == DistInfo(5, 8, 1, "slurm")
    assert dist_info({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == DistInfo()  # a one-task allocation
    # torchrun's variables win over SLURM's (torchrun inside an allocation)
    assert dist_info({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}).launcher == "torchrun"
    with pytest.raises(UserError, match="outside world size"):
        dist_info({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="not an integer"):
        dist_info({"RANK": "x", "WORLD_SIZE": "2"})
    assert backend_for("cpu") == "gloo" and backend_for("cuda:1") == "nccl"


@pytest.mark.parametrize("n_items,count", [(0, 1), (1, 3), (7, 2), (17, 3), (10, 10), (5, 8)])
def test_strided_shards_partition_and_merge_restores_order(n_items, count):
    ids = [f"id{i}" for i in range(n_items)]
    parts = [shard(ids, i, count) for i in range(count)]
    assert sorted(x for p in parts for x in p) == sorted(ids)  # a partition: each id in exactly one shard
    assert all(len(p) in (n_items // count, -(-n_items // count)) for p in parts)  # balanced
    records = [{"id": x, "caption": x.upper()} for p in reversed(parts) for x in p]
    assert merge_ordered(records, ids) == [{"id": x, "caption": x.upper()} for x in ids]


def test_merge_rejects_duplicates_missing_and_unknown():
    with pytest.raises(UserError, match="'b' occurs 2 times"):
        merge_ordered([{"id": "a"}, {"id": "b"}, {"id": "b"}], ["a", "b"])
    with pytest.raises(UserError, match="1 of 2 ids missing, e.g. 'b'"):
        merge_ordered([{"id": "a"}], ["a", "b"])
    with pytest.raises(UserError, match="not in the split"):
        merge_ordered([{"id": "a"}, {"id": "b"}, {"id": "z"}], ["a", "b"])
    with pytest.raises(UserError, match="shard 3 of 3"):
        shard([1, 2], 3, 3)


def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    if not exe.exists():
        pytest.skip("torchrun not installed next to the interpreter")
    return [str(exe)]


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(tmp_path):
    toy.register()
    data = toy.make_toy(tmp_path / "data")
    common = ["run", "toy-captioner", "--dataset", "toy-diff", "--data-root", str(data), "--batch-size", "3",
              "--metrics", "BLEU-4,CIDEr-D"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert run_main([*common, "--runs-dir", str(tmp_path / "one")]) == 0
    two = subprocess.run([*_torchrun(), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                          str(free_port()), toy.__file__, *common, "--runs-dir", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    # only rank 0 printed the table
    assert two.stdout.count("toy-captioner on toy-diff test") == 1
    d1, d2 = (next((tmp_path / n).glob("*/*/*")) for n in ("one", "two"))
    assert d1.name == d2.name  # the world size is not part of the spec hash
    assert (d1 / "predictions.jsonl").read_bytes() == (d2 / "predictions.jsonl").read_bytes()
    assert (d1 / "per_sample.jsonl").read_bytes() == (d2 / "per_sample.jsonl").read_bytes()
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (d1, d2))
    assert m1["subsets"] == m2["subsets"] and m1["retrieval"] == m2["retrieval"]
    assert (m1["run"]["world_size"], m2["run"]["world_size"]) == (1, 2)
    assert json.loads((d2 / "run_spec.json").read_text())["world_size"] == 2
    assert json.loads((d2 / "env.json").read_text())["launcher"] == "torchrun"
    assert not list(d2.glob("predictions.rank*"))  # merged into predictions.jsonl
    assert (d2 / "DONE").exists()

    # A torchrun job killed after the ranks wrote part of their shards resumes on ONE process, identically.
    lines = (d2 / "predictions.jsonl").read_text().splitlines(True)
    resumed = tmp_path / "resumed" / d2.relative_to(tmp_path / "two")
    resumed.parent.mkdir(parents=True)
    shutil.copytree(d2, resumed)
    for f in ("predictions.jsonl", "DONE", "metrics.json", "per_sample.jsonl"):
        (resumed / f).unlink()
    (resumed / "predictions.rank0.jsonl").write_text("".join(lines[0:6:2]))  # ids 0, 2, 4 of rank 0's shard
    (resumed / "predictions.rank1.jsonl").write_text(lines[1] + lines[3][:10])  # id 1 and a torn line
    assert run_main([*common, "--runs-dir", str(tmp_path / "resumed")]) == 0
    assert (resumed / "predictions.jsonl").read_bytes() == (d1 / "predictions.jsonl").read_bytes()
    assert not list(resumed.glob("predictions.rank*"))
