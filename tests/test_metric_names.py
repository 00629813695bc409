"""Metric names as people type them (any case, bleu / rouge / cider / bertscore / spice), resolved in one place."""

from __future__ import annotations

import json

import pytest

from _cli import run_cli
from idcbench.errors import UserError
from idcbench.scoring import DEFAULT_METRICS, resolve_metrics


def test_names_people_type_resolve_to_the_registered_metrics():
    assert resolve_metrics(["bleu,meteor,rouge,cider"]) == list(DEFAULT_METRICS)
    assert resolve_metrics(["BLEU", "Meteor", "ROUGE", "CIDER"]) == list(DEFAULT_METRICS)
    assert resolve_metrics(["bleu_4", "Bleu-1", "rouge_l", "RougeL", "cider-d", "CIDEr"]) == [
        "BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D"]
    assert resolve_metrics(["spice", "Spice"]) == ["SPICE"]
    assert resolve_metrics(["bertscore"]) == resolve_metrics(["BERTScore"]) == ["BERTScore[all-MiniLM-L6-v2]"]
    with pytest.raises(UserError, match=r"unknown metric 'cidr'; did you mean 'CIDEr-D'"):
        resolve_metrics(["cidr"])


@pytest.mark.java
def test_eval_accepts_lower_case_metric_names(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"annotations": [{"image_id": 1, "caption": "a red cube moved"},
                                              {"image_id": 2, "caption": "the blue sphere is gone"}]}))
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([{"image_id": 1, "caption": "the red cube moved"},
                                 {"image_id": 2, "caption": "a sphere is gone"}]))
    scores = []
    for names in ("bleu,meteor,rouge,cider", "BLEU-1,BLEU-2,BLEU-3,BLEU-4,METEOR,ROUGE-L,CIDEr-D"):
        code, out, err = run_cli(capsys, "eval", preds, "--references", gt, "-m", names, "--json", "-")
        assert code == 0, err
        scores.append(json.loads(out)["subsets"]["total"]["metrics"])
    assert scores[0] == scores[1] and list(scores[0]) == list(DEFAULT_METRICS)
