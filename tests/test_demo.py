"""The demo (issue 22): `demo --train` trains and ships compact checkpoints with their provenance, `demo` evaluates the
shipped checkpoints through `--init`; the committed leaderboard is what the shipped checkpoints give."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "leaderboard"
TINY = {  # CPU-sized recipes: a few steps a stage
    "clip4idc-tiny": {"stage1": {"epochs": 1, "max_steps": 2, "batch_size": 8, "val_max_pairs": 8},
                      "stage2": {"epochs": 2, "max_steps": 4, "batch_size": 8, "val_max_pairs": 8},
                      "decoding": {"max_len": 12}},
    "duda-tiny": {"epochs": 2, "val_max_examples": 8},
}


@pytest.fixture(scope="module")
def small_shapes(tmp_path_factory) -> Path:
    import torch

    torch.set_num_threads(1)
    from idcbench.datasets import shapes

    root = tmp_path_factory.mktemp("data")
    shapes.synthesize(root / "shapes", scenes=30, size=64, seed=0, workers=1)
    return root


def test_train_ships_compact_checkpoints_that_the_demo_evaluates(small_shapes, tmp_path, monkeypatch):
    from idcbench import demo, factory, train_log
    from idcbench.data import load_dataset
    from idcbench.rundir import read_curves, read_records

    monkeypatch.setenv("IDCBENCH_DATA", str(small_shapes))
    shipped = tmp_path / "shipped"
    models = [("most-frequent", {}), *TINY.items()]
    result = demo.run_demo(tmp_path / "runs", tmp_path / "board", models=models, train=True, shipped=shipped,
                           resamples=0, device="cpu")
    assert sorted(p.name for p in result.shipped) == ["clip4idc-tiny", "duda-tiny"]
    for dest in result.shipped:
        assert demo.verify_shipped(dest) == []
        prov = dest / demo.PROVENANCE
        assert {"run_spec.json", "env.json", "cost.json"} <= {p.name for p in prov.iterdir()}
        spec = json.loads((prov / "run_spec.json").read_text())["spec"]
        assert spec["train"] is True and spec["model"] == dest.name
        cost = json.loads((prov / "cost.json").read_text())
        assert cost["train_seconds"] > 0 and cost["train_steps"] > 0
    c4 = shipped / "clip4idc-tiny"
    assert (c4 / "weights.safetensors").is_file() and not (c4 / "model.pt").exists()  # the compact form
    runs = {r.spec.model: r for r in result.runs}
    assert set(read_curves(runs["clip4idc-tiny"].run_dir)) == {"stage1", "stage2"}  # from the shipped provenance
    assert read_curves(runs["duda-tiny"].run_dir)["val"][0]["metric"] == "CIDEr-D"
    # the demo's run of each learned model is an --init run of its shipped checkpoint, and captions what it captions
    examples = load_dataset("shapes").examples("test")
    for r in result.runs[1:]:
        spec = json.loads((r.run_dir / "run_spec.json").read_text())["spec"]
        assert spec["train"] is False and spec["checkpoint"]
        model = factory.from_init(shipped / spec["model"], spec["model"])
        want = model.caption([e.pair for e in examples])
        assert [p["caption"] for p in read_records(r.run_dir / "predictions.jsonl")] == want
    # the light runs keep nothing of the machine
    for light in (tmp_path / "board" / "runs").glob("*/*/*"):
        assert not (light / "env.json").exists() and not (light / "DONE").exists()
        assert not {"data_root", "device"} & set(json.loads((light / "run_spec.json").read_text()))
    assert (tmp_path / "board" / "report-clip4idc-tiny.html").is_file()
    assert "val CIDEr-D during training" in (tmp_path / "board" / "report-clip4idc-tiny.html").read_text()

    # `demo --train` again, from scratch elsewhere on this machine: the same weights and the same val curves
    again = demo.run_demo(tmp_path / "runs2", tmp_path / "board2", models=models, train=True,
                          shipped=tmp_path / "shipped2", resamples=0, device="cpu")
    for dest in again.shipped:
        first = shipped / dest.name
        weights = sorted(p.name for p in first.iterdir() if p.is_file() and p.name.startswith(("weights", "vocab")))
        assert weights and all((dest / w).read_bytes() == (first / w).read_bytes() for w in weights), dest.name
        curves = [train_log.read_curves(d / demo.PROVENANCE) for d in (first, dest)]
        assert all(rows for rows in curves[0].values()) and curves[0], dest.name
        assert [{k: [{**row, "seconds": None} for row in rows] for k, rows in c.items()} for c in curves] == \
            [{k: [{**row, "seconds": None} for row in rows] for k, rows in curves[0].items()}] * 2


def test_shipped_checkpoints_give_the_committed_captions(shapes_data, monkeypatch):
    """What `make demo` computes on any machine equals the committed leaderboard: each shipped checkpoint, loaded the
    way the demo loads it, captions the first test pairs exactly as the committed run did (a subset, to stay fast;
    the tables are then a function of the committed light runs, which `test_committed_leaderboard` checks)."""
    from idcbench import demo, factory
    from idcbench.data import load_dataset

    monkeypatch.setenv("IDCBENCH_DATA", str(shapes_data))
    examples = load_dataset("shapes").examples("test")[:48]
    for name in demo.LEARNED:
        dest = demo.shipped_dir(name)
        assert demo.verify_shipped(dest) == [], f"{dest}: files differ from their recorded sha256"
        (run,) = [p for p in (BOARD / "runs" / "shapes" / name).iterdir() if p.is_dir()]
        committed = {json.loads(line)["id"]: json.loads(line)["prediction"]
                     for line in (run / "per_sample.jsonl").read_text().splitlines()}
        model = factory.from_init(dest, name).to("cpu")
        got = model.caption([e.pair for e in examples])
        assert got == [committed[e.id] for e in examples], name


def test_demo_rule_is_the_same_for_every_learned_model():
    """One rule: the same patience and epoch cap for every learned demo model (its stages included)."""
    from idcbench import demo
    from idcbench.factory import resolve

    rules = set()
    for name in demo.LEARNED:
        _, config = resolve(name)
        stages = [config[f"stage{s}"] for s in config.get("stages", [])] or [config]
        rules |= {(int(s["epochs"]), int(s["early_stop"])) for s in stages}
    assert rules == {(40, 5)}
