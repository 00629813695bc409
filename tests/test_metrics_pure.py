"""Pure-Python parts (no Java): BLEU, ROUGE-L, CIDEr-D and the METEOR aggregate against pycocoevalcap 1.2 and
meteor-1.5's formulas, on random tokenized corpora; resampling with repeated rows."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge, my_lcs

from idcbench.metrics import bleu, meteor, rouge
from idcbench.metrics.cider import CiderD
from idcbench.metrics.reference import rescore

VOCAB = "a the red blue cube sphere moved changed to left of is no there change -lrb- -rrb- n't 's |||".split()


def tokenized(rng):
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(0, 12)))


def corpus(seed, n):
    rng = random.Random(seed)
    hyps = [tokenized(rng) for _ in range(n)]
    refs = [[tokenized(rng) for _ in range(rng.randint(1, 6))] for _ in range(n)]
    for k in range(0, n, 5):  # repeated captions
        hyps[k], refs[k] = "there is no change", ["there is no change", "no change", ""]
    return hyps, refs


def coco(hyps, refs, scorer):
    gts = {k: list(r) for k, r in enumerate(refs)}
    res = {k: [h] for k, h in enumerate(hyps)}
    if isinstance(scorer, Bleu):
        return scorer.compute_score(gts, res, verbose=0)
    return scorer.compute_score(gts, res)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_equal(seed):
    hyps, refs = corpus(seed, 150)
    want, want_img = coco(hyps, refs, Bleu(4))
    rows = [bleu.stats(h, r) for h, r in zip(hyps, refs)]
    assert bleu.corpus_bleu(rows) == want
    for k, row in enumerate(rows):
        assert bleu.image_bleu(row) == [want_img[q][k] for q in range(4)]


@pytest.mark.parametrize("seed", [0, 1])
def test_rouge_equal(seed):
    hyps, refs = corpus(seed, 150)
    want, want_img = coco(hyps, refs, Rouge())
    got = np.array([rouge.rouge_l(h, r) for h, r in zip(hyps, refs)])
    assert (got == want_img).all()
    assert np.mean(got) == want


def test_lcs_equal_to_dynamic_program():
    rng = random.Random(5)
    for _ in range(3000):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        assert rouge.lcs(a, b) == my_lcs(a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cider_equal_including_subsets(seed):
    hyps, refs = corpus(seed, 200)
    scorer = CiderD(hyps, refs)
    for idx in (list(range(200)), list(range(0, 200, 3)), [7], list(range(150, 50, -1))):
        want, want_img = coco([hyps[i] for i in idx], [refs[i] for i in idx], Cider())
        got, got_img = scorer.score(idx)
        assert got == want
        assert (got_img == want_img).all()


def test_cider_repeated_images_are_separate_documents_bit_for_bit():
    hyps, refs = corpus(3, 120)
    rng = np.random.default_rng(0)
    scorer = CiderD(hyps, refs)
    for _ in range(3):
        idx = rng.integers(0, 120, size=120).tolist()
        want, want_img = coco([hyps[i] for i in idx], [refs[i] for i in idx], Cider())  # repeats = separate images
        got, got_img = scorer.score(idx)
        assert got == want
        assert (got_img == want_img).all()


def fake_rows(hyps, refs):
    return [{"id": str(k), "scores": {}, "stats": {"hyp": h, "refs": r, "bleu": list(bleu.stats(h, r)),
                                                  "meteor": None}} for k, (h, r) in enumerate(zip(hyps, refs))]


def test_rescore_repeated_rows_are_separate_documents():
    hyps, refs = corpus(4, 80)
    rows = fake_rows(hyps, refs)
    rng = random.Random(1)
    for _ in range(3):
        pick = [rng.randrange(80) for _ in range(80)]
        got = rescore([rows[i] for i in pick], ["BLEU", "ROUGE-L", "CIDEr-D"])
        h, r = [hyps[i] for i in pick], [refs[i] for i in pick]
        b, _ = coco(h, r, Bleu(4))
        assert [got[f"BLEU-{n}"] for n in range(1, 5)] == b
        assert got["ROUGE-L"] == coco(h, r, Rouge())[0]
        assert got["CIDEr-D"] == coco(h, r, Cider())[0]


def test_meteor_aggregate_edge_cases():
    zero = np.zeros(meteor.STATS_LENGTH)
    assert meteor.aggregate(zero) == 0.0  # 0/0 everywhere: NaN in Java, reported as 0
    empty_hyp = zero.copy()
    empty_hyp[1] = 3.0  # reference of 3 words, empty hypothesis
    assert meteor.aggregate(empty_hyp) == 0.0
    perfect = np.array("2.0 2.0 1.0 1.0 1.0 1.0 1.0 1.0 0 0 0 0 0 0 0 0 0 0 0 0 1.0 2.0 2.0".split(), dtype=float)
    assert meteor.aggregate(perfect) == 1.0
    # A perfect segment adds no chunk to the sum (MeteorStats.addStats).
    assert meteor.summable(perfect)[20] == 0.0
