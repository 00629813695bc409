"""A metric is one object: a toy metric defined in this file alone is scored by `eval`, kept per sample, resampled
for the tables' intervals, shown by `compare`, the leaderboard and the report, and listed, without any other file
knowing it (issue 23, item 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _cli import run_cli
from idcbench.metrics import Metric, Scores, register

pytestmark = pytest.mark.java  # the PTB tokenizer


class WordRecall(Metric):
    """Share of the best reference's distinct words that the hypothesis has (a toy)."""

    name, aliases, order, column, mean_of_samples = "Toy-Recall", ("toyrecall",), 7.2, True, True
    description = "toy: best share of a reference's distinct words found in the hypothesis (PTB tokens)"

    def score(self, corpus, done=None) -> Scores:
        hyps, refs = corpus.tokens
        per = [max(len(set(h.split()) & set(r.split())) / max(1, len(set(r.split()))) for r in rs)
               for h, rs in zip(hyps, refs)]
        return Scores(corpus.each_subset(lambda members: np.mean([per[j] for j in members])), per)


register(WordRecall())

REFS = {f"{i:03d}": [f"the {c} cube moved to the left", f"a {c} cube has moved"]
        for i, c in enumerate(["red", "blue", "green", "cyan", "brown", "gray"] * 4)}
PREDS = {i: ("the cube moved" if int(i) % 3 else refs[0]) for i, refs in REFS.items()}


def test_a_metric_defined_in_one_file_works_everywhere(tmp_path, capsys):
    from idcbench import scoring
    from idcbench.metrics import resolve_metrics

    assert resolve_metrics(["TOY_RECALL", "bleu_4"]) == ["BLEU-4", "Toy-Recall"]  # any spelling, table order
    subsets = {"total": list(REFS), "first": list(REFS)[:6]}
    report = scoring.score(PREDS, REFS, subsets, ["Toy-Recall", "BLEU-4"])
    direct = {i: max(len(set(PREDS[i].split()) & set(r.split())) / len(set(r.split())) for r in REFS[i])
              for i in REFS}
    assert report.corpus["total"]["Toy-Recall"] == pytest.approx(np.mean(list(direct.values())))
    assert report.corpus["first"]["Toy-Recall"] == pytest.approx(np.mean([direct[i] for i in subsets["first"]]))
    assert {i: s["Toy-Recall"] for i, s in report.per_sample.items()} == pytest.approx(direct)

    run = tmp_path / "runs" / "toyset" / "toy-model" / "0123456789abcdef"
    run.mkdir(parents=True)
    scoring.save_report(report, run)
    (run / "run_spec.json").write_text(json.dumps({"spec": {"model": "toy-model", "dataset": "toyset",
                                                            "split": "test", "seed": 0}}))
    (run / "DONE").write_text("{}")
    code, out, err = run_cli(capsys, "compare", "--runs-dir", tmp_path / "runs", "--format", "json")
    assert code == 0, err
    (table,) = json.loads(out)
    assert table["columns"] == ["BLEU-4", "Toy-Recall"]  # a column, in its order
    cell = table["rows"][0]["metrics"]["Toy-Recall"]
    assert cell["value"] == pytest.approx(report.corpus["total"]["Toy-Recall"] * 100)
    assert cell["ci_low"] < cell["value"] < cell["ci_high"]  # resampled through the metric's own statistic

    out_dir = tmp_path / "board"
    assert run_cli(capsys, "leaderboard", "--runs-dir", tmp_path / "runs", "--out", out_dir)[0] == 0
    assert "Toy-Recall" in (out_dir / "README.md").read_text()
    assert run_cli(capsys, "report", run, "--out", tmp_path / "r.html")[0] == 0
    assert "Toy-Recall" in (tmp_path / "r.html").read_text()
    code, out, _ = run_cli(capsys, "list", "metrics")
    assert code == 0 and "Toy-Recall" in out
