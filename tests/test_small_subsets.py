"""A subset too small for a metric (CIDEr-D on one example: every idf is log(1/1) = 0, so any caption scores 0) is a
mark with a footnote in every table, never the 0: compare (Markdown, JSON, CSV), the leaderboard (README, CSV,
index.html), the report page and the console table of `run` / `eval`."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image
from pycocoevalcap.cider.cider import Cider

from _cli import run_cli
from _fake_runs import clevr_like, write_run

from idcbench.report import render_report
from idcbench.tables import publish

NOTE = "the subset is too small to score CIDEr-D on"


def test_pycocoevalcap_gives_a_perfect_caption_of_one_example_cider_d_zero():
    refs = {"a": ["the red cube moved", "a red cube has moved"]}
    assert Cider().compute_score(refs, {"a": ["the red cube moved"]})[0] == 0.0  # the number the tables must not show
    refs["b"] = ["there is no change"]
    assert Cider().compute_score(refs, {"a": ["the red cube moved"], "b": ["there is no change"]})[0] > 1.0


@pytest.fixture()
def runs(tmp_path):
    ex = clevr_like(2)  # one color change, one distractor: total n=2, every other subset n=1
    run = write_run(tmp_path / "runs", "clevr-change", "perfect", ex, {e[0]: e[1][0] for e in ex})
    subsets = json.loads((run / "metrics.json").read_text())["subsets"]
    assert subsets["color"]["n"] == 1 and subsets["color"]["metrics"]["CIDEr-D"] == 0.0  # as pycocoevalcap says
    assert subsets["total"]["metrics"]["CIDEr-D"] > 100
    return tmp_path / "runs"


def test_compare_marks_a_one_example_subset(runs, capsys):
    code, out, _ = run_cli(capsys, "compare", "--runs-dir", runs, "--subset", "color", "--format", "json",
                           "--resamples", "50")
    assert code == 0
    table = json.loads(out)[0]
    assert table["rows"][0]["metrics"]["CIDEr-D"] == {"value": None, "flag": "too_small", "seeds": 1}
    assert table["rows"][0]["metrics"]["BLEU-4"]["value"] is not None  # BLEU has no such limit
    assert any(NOTE in n for n in table["notes"])
    code, out, _ = run_cli(capsys, "compare", "--runs-dir", runs, "--subset", "color", "--format", "md")
    assert code == 0 and "| n/a† |" in out and f"† n/a: {NOTE}" in out and "| 0.0 |" not in out
    code, out, _ = run_cli(capsys, "compare", "--runs-dir", runs, "--subset", "color", "--format", "csv")
    line = next(r for r in csv.DictReader(io.StringIO(out)) if r["metric"] == "CIDEr-D")
    assert (line["value"], line["flag"]) == ("", "too_small")
    code, out, _ = run_cli(capsys, "compare", "--runs-dir", runs, "--format", "json")  # total: n=2, a number
    assert json.loads(out)[0]["rows"][0]["metrics"]["CIDEr-D"]["value"] > 100


def test_leaderboard_marks_one_example_subsets_in_every_file(runs, tmp_path):
    board = tmp_path / "board"
    publish.build_leaderboard(runs, board, resamples=50)
    readme = (board / "README.md").read_text()
    types_table = readme.split("### CIDEr-D per change type")[1].split("###")[0]
    assert "| perfect | measured | 1 (0) | n/a† | n/a† |" in types_table and f"† n/a: {NOTE}" in types_table
    lines = list(csv.DictReader(io.StringIO((board / "clevr-change.csv").read_text())))
    color = next(r for r in lines if r["table"] == "types" and r["subset"] == "color" and r["type"] == "measured")
    assert (color["value"], color["flag"]) == ("", "too_small")
    total = next(r for r in lines if r["table"] == "main" and r["metric"] == "CIDEr-D" and r["type"] == "measured")
    assert float(total["value"]) > 100 and total["flag"] == ""
    page = (board / "index.html").read_text()
    assert '<td data-v="" class="flag">n/a†</td>' in page and NOTE in page


def test_report_page_marks_one_example_subsets(runs):
    run = next(runs.glob("*/*/*"))
    page = render_report(run)
    metrics_table = page.split('id="metrics"')[1].split("</table>")[0]
    assert 'data-subset="color"' in metrics_table and "n/a†" in metrics_table
    assert NOTE in page


@pytest.mark.java
def test_eval_console_table_marks_a_one_pair_subset(tmp_path, capsys):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 8), name[0].encode()[0]).save(tmp_path / name)
    rows = [{"id": "1", "before": "a.png", "after": "b.png", "captions": ["the red cube moved"], "split": "test",
             "type": "move"},
            {"id": "2", "before": "c.png", "after": "c.png", "captions": ["nothing changed"], "split": "test",
             "type": "none"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": "1", "caption": "the red cube moved"}) + "\n"
                     + json.dumps({"id": "2", "caption": "nothing changed"}) + "\n")
    code, out, _ = run_cli(capsys, "eval", preds, "--dataset", "pairs:pairs.jsonl", "--data-root", tmp_path,
                           "--metrics", "BLEU-4,CIDEr-D")
    assert code == 0
    lines = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "n/a†" in lines["type=move"] and "n/a†" in lines["type=none"] and "n/a†" not in lines["total"]
    assert f"† n/a: {NOTE}" in out
