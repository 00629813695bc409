"""`idcbench eval`: the published Spot-the-Diff DDLA numbers, dataset and COCO-file references agree, one-line
errors with exit code 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli import run_cli

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DDLA = SHARED / "spot-the-diff" / "ddla-predictions"


@pytest.mark.java
def test_ddla_reproduces_published_scores(tmp_path, capsys):
    if not DDLA.exists():
        pytest.skip("shared data absent")
    out = tmp_path / "scores.json"
    code, stdout, _ = run_cli(capsys, *["eval", str(DDLA / "ddla_rerun_predfile.json"), "--references",
                           str(DDLA / "ddla_rerun_gtfile.json"), "--json", str(out)])
    assert code == 0
    m = json.loads(out.read_text())["subsets"]["total"]
    assert m["n"] == 1270
    got = {k: round(v / 100, 3) for k, v in m["metrics"].items()}
    # The authors' notebook (harsh19/spot-the-diff code/check_predictions.ipynb) on exactly these two files.
    assert (got["BLEU-1"], got["BLEU-4"], got["METEOR"], got["ROUGE-L"], got["CIDEr-D"]) == (
        0.296, 0.076, 0.109, 0.280, 0.351)
    assert "29.63" in stdout


@pytest.mark.java
def test_dataset_references_equal_coco_file(tmp_path, capsys):
    root = SHARED / "spot-the-diff"
    if not (DDLA.exists() and (root / "test.json").exists()):
        pytest.skip("shared data absent")
    results = []
    for refs in (["--dataset", "spot-the-diff", "--data-root", str(root)],
                 ["--references", str(DDLA / "ddla_rerun_gtfile.json")]):
        code, stdout, _ = run_cli(capsys, *["eval", str(DDLA / "ddla_rerun_predfile.json"), *refs, "--metrics", "BLEU,CIDEr",
                               "--json", "-"])
        assert code == 0
        results.append(json.loads(stdout)["subsets"]["total"])
    assert results[0] == results[1]


def test_errors_one_line_exit_2_nothing_written(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"annotations": [{"image_id": 1, "caption": "a b"}, {"image_id": 2, "caption": "c"}]}))
    preds = tmp_path / "p.json"
    out = tmp_path / "out.json"
    cases = [
        ('[{"image_id": 1, "caption": "x"}]', "1 of 2 reference ids have no prediction (first: '2')"),
        ('[{"image_id": 1, "caption": "x"}, {"image_id": 2, "caption": "y"}, {"image_id": 3, "caption": "z"}]',
         "not in the references"),
        ('[{"image_id": 1, "caption": "x"}, {"image_id": 1, "caption": "y"}]', "duplicate id '1'"),
        ('[{"image_id": 1, "caption": "x"} {"image_id": 2}]', "line 1, column 34: invalid JSON"),
    ]
    for text, message in cases:
        preds.write_text(text)
        code, _, err = run_cli(capsys, *["eval", str(preds), "--references", str(gt), "--json", str(out)])
        assert code == 2 and message in " ".join(err.split()), err
        assert not out.exists()
    code, _, err = run_cli(capsys, *["eval", str(preds), "--json", str(out)])
    assert code == 2 and "--dataset" in err
    code, _, err = run_cli(capsys, *["eval", str(preds), "--references", str(gt), "--metrics", "CIDR"])
    assert code == 2 and "did you mean" in err
