"""idcbench's COCO metrics against pycocoevalcap 1.2 called scorer by scorer, on a random corpus full of traps.

One module-scoped run of each side (JVM starts are expensive); every value must be equal (==), per subset too.
"""

from __future__ import annotations

import random

import pytest

from _coco_reference import coco_reference
from idcbench.metrics.reference import rescore
from idcbench.rundir import load_samples
from idcbench.scoring import DEFAULT_METRICS, save_report, score

pytestmark = pytest.mark.java

WORDS = ["the", "a", "red", "blue", "cube", "sphere", "cylinder", "has", "moved", "changed", "to", "left", "of",
         "there", "is", "no", "change", "isn't", "can't", "it's", "Café", "naïve", "über", "Ünïcode", "“quoted”",
         "(small)", "[big]", "{x}", "|||", "||", "-", "--", "...", ".", ",", "!", "?", ";", ":", "'", "''", "`",
         "``", "1.5", "3D", "U.S.", "&", "$5", "e-mail", "O'Brien", "ß", "日本", "😀", "\t", "  "]


def sentence(rng: random.Random) -> str:
    if rng.random() < 0.06:
        return ""
    n = rng.randint(1, 14)
    s = " ".join(rng.choice(WORDS) for _ in range(n))
    if rng.random() < 0.3:
        s = s.capitalize() + rng.choice([".", "!", " .", "?", ""])
    return s


def make_corpus(seed: int = 7, n: int = 120):
    rng = random.Random(seed)
    ids = [f"{k:06d}.png" for k in range(n)]
    refs = {i: [sentence(rng) for _ in range(rng.randint(1, 5))] for i in ids}
    preds = {i: sentence(rng) for i in ids}
    # Repeated captions, as in templated datasets (the CIDEr-D caches must not change anything).
    for i in ids[::7]:
        preds[i] = "There is no change."
        refs[i] = ["there is no change", "nothing has changed", "The scene is the same."]
    subsets = {"total": ids, "even": ids[::2], "odd": ids[1::2], "few": ids[5:17], "one": ids[3:4]}
    return preds, refs, subsets


@pytest.fixture(scope="module")
def both():
    preds, refs, subsets = make_corpus()
    report = score(preds, refs, subsets)
    expected, per_image, gts, res = coco_reference(preds, refs, subsets)
    return report, expected, per_image, gts, res, subsets


def test_tokenization_equal(both):
    report, _, _, gts, res, _ = both
    for i, sample in report.samples.items():
        assert sample["hyp"] == res[i][0]
        assert sample["refs"] == gts[i]


def test_corpus_values_equal_per_subset(both):
    report, expected, *_ = both
    assert set(report.corpus) == set(expected)
    for subset, values in expected.items():
        for metric in DEFAULT_METRICS:
            assert report.corpus[subset][metric] == values[metric], (subset, metric)


def test_per_sample_values_equal(both):
    report, _, per_image, *_ = both
    for i, values in per_image.items():
        for metric, v in values.items():
            assert report.per_sample[i][metric] == v, (i, metric)


def test_rescore_equals_scorer(both, tmp_path):
    report, expected, _, _, _, subsets = both
    save_report(report, tmp_path)
    rows = load_samples(tmp_path)
    assert [r["id"] for r in rows] == list(report.per_sample)
    by_id = {r["id"]: r for r in rows}
    for subset, ids in subsets.items():
        got = rescore([by_id[i] for i in ids], list(DEFAULT_METRICS))
        for metric in DEFAULT_METRICS:
            want = expected[subset][metric]
            if metric == "METEOR":  # Java's Math.pow vs C's pow
                assert got[metric] == pytest.approx(want, rel=1e-12, abs=1e-12), (subset, metric)
            else:
                assert got[metric] == want, (subset, metric)


def test_line_breaks_do_not_shift_other_captions():
    preds, refs, _ = make_corpus(seed=3, n=30)
    metrics = ["BLEU", "ROUGE-L", "CIDEr-D"]
    clean = score(preds, refs, metrics=metrics)
    ids = list(preds)
    dirty = dict(preds)
    dirty[ids[4]] = "the red\rcube moved"
    dirty[ids[10]] = "a blue\u2028sphere\u2029appeared\x0bnow\x0c\x85"
    refs2 = {i: list(r) for i, r in refs.items()}
    refs2[ids[12]] = ["first line\r\nsecond line", *refs[ids[12]][1:]]
    broken = score(dirty, refs2, metrics=metrics)
    for i in ids:
        if i in (ids[4], ids[10], ids[12]):
            continue
        assert broken.samples[i] == clean.samples[i]
        for m in ("BLEU-4", "ROUGE-L"):
            assert broken.per_sample[i][m] == clean.per_sample[i][m]
    assert broken.samples[ids[4]]["hyp"] == "the red cube moved"
    assert broken.samples[ids[10]]["hyp"] == "a blue sphere appeared now"
