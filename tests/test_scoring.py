"""score(): input validation, coverage, metric names, the metrics.json / per_sample.jsonl contract."""

from __future__ import annotations

import json

import pytest

from idcbench.errors import UserError
from idcbench.metrics.reference import rescore
from idcbench.rundir import load_samples
from idcbench.scoring import metrics_json, resolve_metrics, save_report, score

REFS = {"a": ["the red cube moved", "a cube moved"], "b": ["no change"], "c": ["the ball is gone", "ball removed"]}
PREDS = {"a": "the red cube moved", "b": "there is no change", "c": "a ball disappeared"}


def test_resolve_metrics():
    assert resolve_metrics(None) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"]
    assert resolve_metrics(["CIDEr,ROUGE_L", "Bleu_4"]) == ["BLEU-4", "ROUGE-L", "CIDEr-D"]
    with pytest.raises(UserError, match="unknown metric 'CIDR'.*did you mean"):
        resolve_metrics(["CIDR"])


def test_missing_unknown_and_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match=r"1 of 3 reference ids have no prediction \(first: 'c'\).*--allow-partial"):
        score({"a": "x", "b": "y"}, REFS, metrics=["BLEU-1"])
    with pytest.raises(UserError, match="1 predicted ids are not in the references"):
        score({**PREDS, "zz": "x"}, REFS, metrics=["BLEU-1"])
    with pytest.raises(UserError, match="not a string"):
        score({**PREDS, "a": 3}, REFS, metrics=["BLEU-1"])
    with pytest.raises(UserError, match="no reference caption"):
        score(PREDS, {**REFS, "c": []}, metrics=["BLEU-1"])
    with pytest.raises(UserError, match="not in the references"):
        score(PREDS, REFS, {"x": ["a", "nope"]}, metrics=["BLEU-1"])


@pytest.mark.java
def test_partial_coverage_contract_and_rescore(tmp_path):
    report = score({"a": PREDS["a"], "c": PREDS["c"]}, REFS, {"total": list(REFS), "ab": ["a", "b"]},
                   metrics=["BLEU", "ROUGE-L", "CIDEr-D"], allow_partial=True, tags={"a": {"kind": "semantic"}})
    assert report.coverage["missing"] == 1 and report.coverage["missing_ids"] == ["b"]
    assert report.subsets == {"total": ["a", "c"], "ab": ["a"]}
    alone = score({"a": PREDS["a"], "c": PREDS["c"]}, {"a": REFS["a"], "c": REFS["c"]},
                  metrics=["BLEU", "ROUGE-L", "CIDEr-D"])
    assert report.corpus["total"] == alone.corpus["total"]
    written = save_report(report, tmp_path, {"run": {"seed": 7}})
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m == json.loads(json.dumps(written)) and m["run"] == {"seed": 7}  # the extra keys, written once
    assert {k: v for k, v in m.items() if k != "run"} == json.loads(json.dumps(metrics_json(report)))
    assert m["scale"] == 100 and m["subsets"]["ab"]["n"] == 1
    assert m["subsets"]["total"]["metrics"]["CIDEr-D"] == pytest.approx(report.corpus["total"]["CIDEr-D"] * 100)
    assert m["coverage"]["fraction"] == pytest.approx(2 / 3)
    rows = load_samples(tmp_path)
    assert [r["id"] for r in rows] == ["a", "c"]
    assert set(rows[0]) == {"id", "prediction", "tags", "subsets", "scores", "stats"}
    assert rows[0]["subsets"] == ["ab"] and rows[1]["subsets"] == []  # membership of every subset but total
    assert rows[0]["tags"] == {"kind": "semantic"} and rows[0]["stats"]["hyp"] == "the red cube moved"
    assert rows[0]["stats"]["meteor"] is None
    got = rescore(rows, ["BLEU", "ROUGE-L", "CIDEr-D"])
    for k, v in got.items():
        assert v == pytest.approx(report.corpus["total"][k], rel=1e-12)
    with pytest.raises(UserError, match="METEOR"):
        rescore(rows, ["METEOR"])
