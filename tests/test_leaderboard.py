"""`compare` and the leaderboard files: grouping over seeds, intervals, paired p-values, published rows,
idempotence and `--check`."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from _cli import run_cli
from _fake_runs import clevr_like, predictions, write_run
from idcbench import bootstrap as bs
from idcbench.tables import build, publish, runs as tr, stats
from idcbench.cli import main
from idcbench.errors import UserError

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """clevr-change: a good model (3 seeds), a weak one, a model with two configs; shapes: one model."""
    root = tmp_path_factory.mktemp("runs")
    ex = clevr_like(120)
    for s in (0, 1, 2):
        write_run(root, "clevr-change", "good", ex, predictions(ex, 0.85, seed=s), seed=s,
                  retrieval={"t2p_R@1": 40.0 + s, "p2t_R@1": 30.0})
    write_run(root, "clevr-change", "weak", ex, predictions(ex, 0.25, seed=9))
    write_run(root, "clevr-change", "knn", ex, predictions(ex, 0.5, seed=4), config={"k": 1})
    write_run(root, "clevr-change", "knn", ex, predictions(ex, 0.6, seed=5), config={"k": 5})
    write_run(root, "shapes", "good", ex[:40], predictions(ex[:40], 0.7, seed=1))
    return root


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_groups_seeds_and_labels_configs(runs):
    groups = tr.group_runs(tr.discover_runs(runs))
    labels = [(g.dataset, g.label, g.seeds) for g in groups]
    assert labels == [("clevr-change", "good", [0, 1, 2]), ("clevr-change", "knn (k=1)", [0]),
                      ("clevr-change", "knn (k=5)", [0]), ("clevr-change", "weak", [0]), ("shapes", "good", [0])]


def test_compare_means_stds_intervals_and_p_values(runs):
    tables = build.compare(tr.discover_runs(runs, "clevr-change"), baseline="weak", resamples=300)
    assert len(tables) == 1
    t = tables[0]
    assert t.columns == ["BLEU-4", "ROUGE-L", "CIDEr-D", "t2p_R@1", "p2t_R@1"]  # METEOR/SPICE null everywhere
    rows = {r.label: r for r in t.rows}
    assert [r.label for r in t.rows][0] == "good"  # sorted by CIDEr-D
    good_runs = sorted((runs / "clevr-change" / "good").iterdir())
    vals = [_metrics(p)["subsets"]["total"]["metrics"]["CIDEr-D"] for p in good_runs]
    cell = rows["good"].cells["CIDEr-D"]
    assert cell.value == pytest.approx(np.mean(vals)) and cell.std == pytest.approx(np.std(vals, ddof=1))
    assert cell.seeds == 3 and cell.low < cell.value < cell.high
    assert rows["good"].cells["t2p_R@1"].value == pytest.approx(41.0) and rows["good"].cells["t2p_R@1"].low is None
    assert rows["weak"].p_value is None and t.baseline == "weak"
    assert rows["good"].p_value < 0.01
    for r in t.rows:
        for c in ("BLEU-4", "ROUGE-L", "CIDEr-D"):
            assert r.cells[c].low <= r.cells[c].high


def test_bootstrap_statistics_reproduce_metrics_json_on_every_subset(runs):
    cache = stats.Stats()
    for run in tr.discover_runs(runs):
        for subset, sub in run.metrics["subsets"].items():
            for metric in ("BLEU-4", "ROUGE-L", "CIDEr-D"):
                ids, stat = cache.get(run, subset, metric)
                assert len(ids) == sub["n"]
                got = float(stat(np.arange(len(ids))[None])[0]) * 100
                assert got == pytest.approx(sub["metrics"][metric], rel=1e-9, abs=1e-9), (run.path, subset, metric)


def test_paired_p_value_of_identical_runs_is_one(tmp_path):
    ex = clevr_like(60)
    preds = predictions(ex, 0.5, seed=2)
    write_run(tmp_path, "d", "a", ex, preds)
    write_run(tmp_path, "d", "b", ex, preds)
    t = build.compare(tr.discover_runs(tmp_path), baseline="b", resamples=200)[0]
    assert {r.label: r.p_value for r in t.rows}["a"] == 1.0


def test_paired_test_needs_the_same_examples(tmp_path):
    ex = clevr_like(60)
    write_run(tmp_path, "d", "a", ex, predictions(ex, 0.5))
    write_run(tmp_path, "d", "b", ex[:50], predictions(ex[:50], 0.5))
    with pytest.raises(UserError, match="cover different examples"):
        build.compare(tr.discover_runs(tmp_path), baseline="b", resamples=50)


def test_unknown_baseline_and_empty_input(runs, tmp_path):
    with pytest.raises(UserError, match="no such model"):
        build.compare(tr.discover_runs(runs), baseline="nope", resamples=10)
    with pytest.raises(UserError, match="no finished runs"):
        build.compare([], resamples=10)
    with pytest.raises(UserError, match="not found"):
        tr.discover_runs(tmp_path / "missing")


def test_runs_without_per_sample_rows_get_values_without_intervals(tmp_path):
    ex = clevr_like(30)
    write_run(tmp_path, "d", "a", ex, predictions(ex, 0.5), samples=False)
    cell = build.compare(tr.discover_runs(tmp_path), resamples=50)[0].rows[0].cells["CIDEr-D"]
    assert cell.value is not None and cell.low is None


def test_truncated_per_sample_file_drops_intervals_and_says_so(tmp_path, capsys):
    ex = clevr_like(60)
    write_run(tmp_path, "d", "a", ex, predictions(ex, 0.6))
    cut = write_run(tmp_path, "d", "b", ex, predictions(ex, 0.5)) / "per_sample.jsonl"
    text = cut.read_text()
    cut.write_text("".join(text.splitlines(keepends=True)[:50]))  # cut at a line boundary: every row is valid JSON
    t = build.compare(tr.discover_runs(tmp_path), baseline="a", resamples=50)[0]
    rows = {r.label: r for r in t.rows}
    assert rows["a"].cells["CIDEr-D"].low is not None
    assert rows["b"].cells["CIDEr-D"].value is not None and rows["b"].cells["CIDEr-D"].low is None
    assert rows["b"].p_value is None
    assert t.warnings == ["no intervals or p-values for b: seed 0's per_sample.jsonl has 50 rows for the 60 examples "
                          "of metrics.json (truncated?); `idcbench score RUN_DIR` rewrites it"]
    code, out, err = run_cli(capsys, "compare", "--runs-dir", tmp_path, "--format", "csv", "--resamples", "50")
    assert code == 0 and list(csv.DictReader(io.StringIO(out)))  # stdout stays the table
    assert err.splitlines() == [f"warning: d (test, total): {t.warnings[0].replace('or p-values ', '')}"]

    cut.write_text(text[:-40])  # cut inside the last line
    t = build.compare(tr.discover_runs(tmp_path), resamples=50)[0]
    (warning,) = t.warnings
    assert warning.startswith("no intervals for b: seed 0's per_sample.jsonl: line 60, column ") and "invalid JSON" in warning
    out_dir = tmp_path / "board"
    code, out, err = run_cli(capsys, "leaderboard", "--runs-dir", tmp_path, "--out", out_dir, "--resamples", "50")
    assert code == 0 and [line for line in err.splitlines() if "warning" in line] == [f"warning: d (test): {warning}"]
    assert f"**Warning:** {warning}" in (out_dir / "README.md").read_text()  # readers of the page learn why too
    assert "Warning: no intervals for b" in (out_dir / "index.html").read_text()
    cut.unlink()
    assert build.compare(tr.discover_runs(tmp_path), resamples=50)[0].warnings == [
        "no intervals for b: seed 0's per_sample.jsonl is missing; `idcbench score RUN_DIR` rewrites it"]
    assert build.compare(tr.discover_runs(tmp_path), resamples=0)[0].warnings == []  # no intervals asked for


def test_truncated_retrieval_ranks_are_reported(tmp_path):
    ex = clevr_like(20)
    run = write_run(tmp_path, "d", "m", ex, predictions(ex, 0.5), retrieval={"t2p_R@1": 40.0, "n_pairs": 10.0})
    (run / "retrieval.jsonl").write_text("".join(json.dumps({"id": e[0], "t2p": [1], "p2t": 1}) + "\n" for e in ex[:8]))
    t = build.compare(tr.discover_runs(tmp_path), resamples=50)[0]
    assert t.rows[0].cells["t2p_R@1"].low is None and t.rows[0].cells["CIDEr-D"].low is not None
    assert t.warnings == ["no intervals for m: seed 0's retrieval.jsonl has 8 rows for the 10 ranked pairs of "
                          "metrics.json (truncated?); `idcbench score RUN_DIR` rewrites it"]


def test_compare_cli_formats(runs, capsys):
    run_dirs = [str(p) for p in sorted((runs / "clevr-change").glob("*/*"))]
    with pytest.raises(SystemExit) as e:
        main(["compare", *run_dirs, "--baseline", "weak", "--format", "json", "--resamples", "100"])
    assert e.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["label"] for r in data[0]["rows"]} == {"good", "weak", "knn (k=1)", "knn (k=5)"}
    with pytest.raises(SystemExit) as e:
        main(["compare", "--runs-dir", str(runs), "--dataset", "shapes", "--format", "csv", "--resamples", "50"])
    assert e.value.code == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["dataset"] for r in rows} == {"shapes"} and {r["metric"] for r in rows} >= {"BLEU-4", "CIDEr-D"}
    with pytest.raises(SystemExit) as e:
        main(["compare", "--runs-dir", str(runs), "--subset", "color", "--format", "md", "--resamples", "50"])
    assert e.value.code == 0 and "clevr-change (test, color)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # a folder of runs works as an argument too
        main(["compare", str(runs / "clevr-change" / "knn"), "--format", "json", "--resamples", "0"])
    assert e.value.code == 0
    assert [r["label"] for r in json.loads(capsys.readouterr().out)[0]["rows"]] == ["knn (k=5)", "knn (k=1)"]
    with pytest.raises(SystemExit) as e:
        main(["compare", "--runs-dir", str(runs), "--format", "xml"])
    assert e.value.code == 2 and "--format" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- leaderboard
def test_leaderboard_is_idempotent_and_a_pure_function_of_the_runs(runs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    paths = publish.build_leaderboard(runs, a, resamples=200)
    assert sorted(p.name for p in paths) == ["README.md", "clevr-change.csv", "index.html", "shapes.csv"]
    before = {p.name: p.read_bytes() for p in paths}
    mtimes = {p.name: p.stat().st_mtime_ns for p in paths}
    publish.build_leaderboard(runs, a, resamples=200)  # second run: nothing changes, nothing rewritten
    assert {p.name: p.read_bytes() for p in a.iterdir()} == before
    assert {p.name: p.stat().st_mtime_ns for p in a.iterdir()} == mtimes
    copy = tmp_path / "runs-copy"  # other location, same runs: same bytes (no paths, no timestamps)
    shutil.copytree(runs, copy)
    publish.build_leaderboard(copy, b, resamples=200)
    assert {p.name: p.read_bytes() for p in b.iterdir()} == before
    assert publish.check_leaderboard(runs, a, resamples=200) == []


def test_leaderboard_content(runs, tmp_path):
    publish.build_leaderboard(runs, tmp_path, resamples=100)
    md = (tmp_path / "README.md").read_text()
    clevr = md[md.index("## clevr-change"):md.index("## shapes")]
    shapes = md[md.index("## shapes"):]
    assert "### CIDEr-D per change type" in clevr and "### Semantic change vs distractor" in clevr
    # published rows: labelled, with their source listed; none for shapes (no published numbers)
    assert re.search(r"\| DUDA \(ICCV 2019\) \| published \[\d\] \|.*\| 112\.3 \|", clevr)
    assert "the official CLIP4IDC README (mean of 8 seeds)" in clevr
    assert "published" not in shapes
    # the measured good model, 3 seeds: mean ± std [low, high]
    assert re.search(r"\| good \| measured \| 3 \(0, 1, 2\) \| 120 \| [\d.]+ ± [\d.]+ \[[\d.]+, [\d.]+\]", clevr)
    # Seeds: how many, and which; one seed reads "1 (0)", not a bare "0" that looks like a count
    assert re.search(r"\| weak \| measured \| 1 \(0\) \| 120 \|", clevr)
    rows = list(csv.DictReader(open(tmp_path / "clevr-change.csv")))
    good = [r for r in rows if r["label"] == "good" and r["table"] == "main" and r["metric"] == "CIDEr-D"]
    assert len(good) == 1 and float(good[0]["ci_low"]) < float(good[0]["value"]) < float(good[0]["ci_high"])
    assert good[0]["seeds"] == "3 (0, 1, 2)" and None not in good[0]  # the commas stay in one quoted field
    assert {r["seeds"] for r in rows if r["label"] == "weak"} == {"1 (0)"}
    assert {r["seeds"] for r in rows if r["type"] == "published"} == {""}
    color = [r for r in rows if r["table"] == "types" and r["subset"] == "color" and r["label"] == "good"]
    vals = [_metrics(p)["subsets"]["color"]["metrics"]["CIDEr-D"] for p in sorted((runs / "clevr-change/good").iterdir())]
    assert float(color[0]["value"]) == pytest.approx(np.mean(vals), abs=1e-4)
    assert any(r["type"] == "published" and r["label"] == "SCORER+CBR (ICCV 2023)" and r["subset"] == "move"
               and float(r["value"]) == 92.2 for r in rows)


def test_check_detects_edits_missing_and_stale_files(runs, tmp_path, capsys):
    out = tmp_path / "lb"
    publish.build_leaderboard(runs, out, resamples=100)
    args = ["leaderboard", "--runs-dir", str(runs), "--out", str(out), "--resamples", "100"]
    with pytest.raises(SystemExit) as e:
        main([*args, "--check"])
    assert e.value.code == 0
    readme = out / "README.md"
    readme.write_text(readme.read_text().replace("| weak | measured", "| weak | measurd", 1))
    with pytest.raises(SystemExit) as e:
        main([*args, "--check"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "README.md" in err and len(err.strip().splitlines()) == 1
    assert publish.check_leaderboard(runs, out, resamples=100) == [f"{readme}: differs from what the runs give"]
    (out / "shapes.csv").unlink()
    (out / "old-dataset.csv").write_text("x\n")
    diffs = publish.check_leaderboard(runs, out, resamples=100)
    assert any("shapes.csv: missing" in d for d in diffs) and any("old-dataset.csv" in d for d in diffs)
    with pytest.raises(SystemExit) as e:
        main(args)  # regenerate: fixes everything, removes the stale csv
    assert e.value.code == 0 and not (out / "old-dataset.csv").exists()
    assert publish.check_leaderboard(runs, out, resamples=100) == []


def test_leaderboard_of_no_runs(tmp_path):
    (tmp_path / "runs").mkdir()
    publish.build_leaderboard(tmp_path / "runs", tmp_path / "out", resamples=10)
    assert "No runs yet" in (tmp_path / "out" / "README.md").read_text()


# ---------------------------------------------------------------------------------------- published data
def _published_md_numbers(text: str) -> dict[str, list[tuple[str, list[float | None]]]]:
    section = {"CLEVR-Change": "clevr-change", "Spot-the-Diff": "spot-the-diff", "Image-Editing-Request": "ier"}
    out: dict[str, list] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = next((v for k, v in section.items() if line[3:].startswith(k)), None)
        elif current and line.startswith("| ") and not line.startswith("| method") and "---" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            out.setdefault(current, []).append((cells[0], [None if c == "-" else float(c) for c in cells[1:]]))
    return out


def test_published_data_matches_the_reference_tables():
    from idcbench.published import published

    md = SHARED / "reference" / "published.md"
    if not md.exists():
        pytest.skip("../shared/reference/published.md not present")
    text = md.read_text()
    tables = _published_md_numbers(text)
    metrics = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SPICE")
    for dataset, rows in tables.items():
        ours = published(dataset)
        assert len(ours) == len(rows)
        for row, (name, values) in zip(ours, rows):
            assert name.startswith(row.method.split(",")[0]) and ("(" not in name or row.venue in name), name
            assert [row.value(m) for m in metrics[:len(values)]] == values, name
    # per change type and semantic-only numbers (prose lines of the CLEVR-Change section)
    for method, nums in re.findall(r"(DUDA|SCORER\+CBR|DIRL\+MEDIC) ([\d. /]+);?", text.split("Per change type")[1]
                                   .split("Semantic change only")[0]):
        vals = [float(v) for v in nums.strip(" ;.").split("/")]
        row = next(r for r in published("clevr-change") if r.method == method)
        assert [row.value("CIDEr-D", t) for t in ("color", "material", "add", "drop", "move")] == vals
    sem = text.split("Semantic change only")[1].split("##")[0]
    for method, nums in re.findall(r"(DUDA|SCORER\+CBR) ([\d. /-]+)", sem):
        vals = [None if v.strip() == "-" else float(v) for v in nums.strip(" ;.").split("/")]
        row = next(r for r in published("clevr-change") if r.method == method)
        assert [row.value(m, "semantic") for m in metrics] == vals


# ------------------------------------------------------------------------ real scorer rows (integration)
@pytest.mark.java
def test_statistics_from_scoring_rows_equal_metrics_json_and_rescore(tmp_path):
    from idcbench import rundir, scoring
    from idcbench.metrics import reference

    ex = clevr_like(80, seed=3)
    preds = {eid: (refs[0].upper() + "." if k % 3 else "The cube, it moved!") for k, (eid, refs, _) in enumerate(ex)}
    refs = {e[0]: e[1] for e in ex}
    subsets = {"total": list(refs), "semantic": [e[0] for e in ex if e[2]["kind"] == "semantic"],
               "hard-iou": [e[0] for e in ex[::3]]}  # a subset no tag tells: rows must name their subsets
    try:
        report = scoring.score(preds, refs, subsets, ["BLEU-4", "ROUGE-L", "CIDEr-D"], tags={e[0]: e[2] for e in ex})
    except UserError as e:  # no Java for the PTB tokenizer
        pytest.skip(str(e))
    run = tmp_path / "runs" / "d" / "m" / "h"
    run.mkdir(parents=True)
    scoring.save_report(report, run)
    (run / "run_spec.json").write_text(json.dumps({"spec": {"model": "m", "dataset": "d", "split": "test", "seed": 0}}))
    info = tr.load_run(run)
    samples = rundir.load_samples(run)
    for subset in ("total", "semantic", "hard-iou"):
        for metric in ("BLEU-4", "ROUGE-L", "CIDEr-D"):
            ids, stat = stats.Stats().get(info, subset, metric)
            assert ids == sorted(subsets[subset])
            idx = np.vstack([np.arange(len(ids))[None], next(bs.resample_batches(len(ids), 3, seed=1))])
            got = stat(idx)
            assert got[0] * 100 == pytest.approx(info.value(metric, subset), rel=1e-12)
            rows = [s for s in sorted(samples, key=lambda s: s["id"]) if s["id"] in set(ids)]
            for r in range(1, len(idx)):
                want = reference.rescore([rows[i] for i in idx[r]], [metric])[metric]
                assert got[r] == pytest.approx(want, rel=1e-12)


def test_retrieval_intervals_resample_the_saved_per_pair_ranks(tmp_path):
    from idcbench.metrics.retrieval import per_example_ranks, retrieval_metrics
    from idcbench import rundir
    from idcbench.rundir import RETRIEVAL_FILE

    ex = clevr_like(60)
    run = write_run(tmp_path, "clevr-change", "m", ex, predictions(ex, 0.5))
    gen = torch.Generator().manual_seed(0)
    n_pairs, owner = 30, [j for j in range(30) for _ in range(1 + j % 3)]
    sim = torch.randn(len(owner), n_pairs, generator=gen)
    sim[torch.arange(len(owner)), torch.tensor(owner)] += 1.5  # better than chance, far from perfect
    sim[0] = sim[1]  # ties count against the query
    want = retrieval_metrics(sim, owner)
    ids = [f"p{j:03d}" for j in range(n_pairs)]
    same, rows = per_example_ranks(sim, owner, ids)
    assert same == want
    (run / RETRIEVAL_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]))  # order does not matter
    metrics = _metrics(run)
    metrics["retrieval"] = {k: want[k] for k in ("t2p_R@1", "p2t_R@1")}
    (run / "metrics.json").write_text(json.dumps(metrics))
    info = tr.load_run(run)
    for metric in ("t2p_R@1", "p2t_R@1"):
        got_ids, stat = stats.retrieval_statistic(rundir.read_retrieval_ranks(run), metric)
        assert got_ids == ids
        assert stat(np.arange(n_pairs)[None])[0] * 100 == pytest.approx(want[metric], rel=1e-12)
        cell = stats.group_cell(tr.group_runs([info])[0], metric, "total", stats.Stats(), 300, 0)
        assert cell.value == pytest.approx(want[metric]) and cell.low < cell.value < cell.high
        assert stats.group_cell(tr.group_runs([info])[0], metric, "semantic", stats.Stats(), 300, 0).value is None
    (run / RETRIEVAL_FILE).write_text('{"id": "p000"}\n')  # no ranks: no interval, the table is still built
    with pytest.raises(UserError):
        rundir.read_retrieval_ranks(run)
    assert stats.group_cell(tr.group_runs([info])[0], "t2p_R@1", "total", stats.Stats(), 300, 0).low is None
    (run / RETRIEVAL_FILE).unlink()
    assert rundir.read_retrieval_ranks(run) is None


def test_cost_columns_are_means_over_seeds_of_what_each_run_recorded(tmp_path, capsys):
    from idcbench import rundir

    ex = clevr_like(60)
    seeds = [write_run(tmp_path, "clevr-change", "good", ex, predictions(ex, 0.85, seed=s), seed=s) for s in (0, 1)]
    weak = write_run(tmp_path, "clevr-change", "weak", ex, predictions(ex, 0.25, seed=9))
    for run, train in zip(seeds, (100.0, 300.0)):
        rundir.add_cost(run, train_seconds=train, device="cuda", train_steps=50)
        rundir.add_cost(run, caption_seconds=2.0)
        rundir.add_cost(run, caption_seconds=1.5)  # a resumed captioning adds up
    rundir.add_cost(weak, score_seconds=0.25, device="cpu")

    (table,) = build.compare(tr.discover_runs(tmp_path), resamples=0, cost=True)
    cost = {r.label: r.cost for r in table.rows}
    assert cost["good"] == {"train_seconds": 200.0, "train_steps": 50.0, "caption_seconds": 3.5,
                            "score_seconds": None, "device": "cuda"}
    assert cost["weak"] == {"train_seconds": None, "train_steps": None, "caption_seconds": None,
                            "score_seconds": 0.25, "device": "cpu"}
    assert build.compare(tr.discover_runs(tmp_path), resamples=0)[0].cost_columns == []  # only when asked

    code, out, err = run_cli(capsys, "compare", "--runs-dir", tmp_path, "--cost", "--format", "md", "--resamples", "0")
    assert code == 0, err
    head, *body = [line.strip("| ").split(" | ") for line in out.splitlines() if line.startswith("| ")]
    good = dict(zip(head, next(r for r in body if r[0] == "good")))
    assert (good["train s"], good["train steps"], good["caption s"], good["score s"]) == ("200.0", "50", "3.5", "–")
    code, out, err = run_cli(capsys, "compare", "--runs-dir", tmp_path, "--cost", "--format", "csv", "--resamples",
                             "0")
    rows = {(r["label"], r["metric"]): r["value"] for r in csv.DictReader(io.StringIO(out))}
    assert rows[("good", "train_seconds")] == "200.0000" and rows[("weak", "device")] == "cpu"

    files = publish.render_leaderboard(tmp_path, resamples=0, cost=True)
    assert "| train s | train steps | caption s | score s | device |" in files["README.md"]
    assert '<td data-v="200.000000">200.0</td>' in files["index.html"]
    assert "train s" not in publish.render_leaderboard(tmp_path, resamples=0)["README.md"]
