"""Bootstrap intervals and paired tests (idcbench.bootstrap) and the vectorised caption-metric statistics
(each metric's `statistic`, in idcbench.metrics), checked against known answers and against pycocoevalcap / the METEOR jar."""

from __future__ import annotations

import random
import subprocess

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from idcbench import bootstrap as bs
from idcbench.metrics.bleu import BleuStatistic
from idcbench.metrics.cider import CiderDStatistic
from idcbench.metrics.meteor import MeteorStatistic

WORDS = ("the a red blue green cube sphere cylinder moved changed its color to was added removed there is no change "
         "small large metal rubber").split()


def _corpus(n: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)

    def sent() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 11)))

    hyps = [sent() for _ in range(n)]
    refs = [[sent() for _ in range(rng.randint(1, 5))] for _ in range(n)]
    hyps[1] = ""  # an empty hypothesis scores too
    return hyps, refs


def _resamples(n: int, k: int, seed: int = 7) -> np.ndarray:
    return np.vstack([np.arange(n)[None], np.concatenate(list(bs.resample_batches(n, k, seed)))])


# ------------------------------------------------------------------------------------------- known answers
def test_identical_examples_give_zero_width_intervals():
    # Every example is the same: every resample is the same corpus, so the interval has zero width.
    n = 50
    hyps, refs = ["the red cube moved"] * n, [["the red cube has moved", "a cube moved"]] * n
    for stat in (BleuStatistic(hyps, refs, 4), CiderDStatistic(hyps, refs), bs.MeanStatistic([0.3] * n)):
        ci = bs.confidence_interval(stat, n, resamples=300)
        assert ci.low == pytest.approx(ci.value, abs=1e-12) and ci.high == pytest.approx(ci.value, abs=1e-12)


def test_perfect_predictions_give_zero_width_bleu_interval():
    hyps, refs = _corpus(60)
    hyps = [r[0] for r in refs]  # each prediction is one of its references
    ci = bs.confidence_interval(BleuStatistic(hyps, refs, 1), len(hyps), resamples=300)
    assert ci.value == pytest.approx(1.0) and ci.high - ci.low < 1e-9


def test_mean_interval_matches_normal_theory():
    rng = np.random.default_rng(3)
    x = (rng.random(4000) < 0.3).astype(float)
    ci = bs.confidence_interval(bs.MeanStatistic(x), len(x), resamples=2000, seed=1)
    half = 1.959964 * x.std() / np.sqrt(len(x))
    assert ci.value == pytest.approx(x.mean())
    assert ci.low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.15 * half)


def test_resampling_is_seeded_and_batch_independent():
    x = np.arange(30, dtype=float) ** 2
    a = bs.distribution(bs.MeanStatistic(x), 30, resamples=77, seed=5, batch=10)
    b = bs.distribution(bs.MeanStatistic(x), 30, resamples=77, seed=5, batch=100)
    c = bs.distribution(bs.MeanStatistic(x), 30, resamples=77, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_counts_match_bincount():
    idx = np.concatenate(list(bs.resample_batches(17, 9, seed=2)))
    w = bs.counts(idx)
    for row, wr in zip(idx, w):
        assert np.array_equal(wr, np.bincount(row, minlength=17))


# -------------------------------------------------------------------------------------------- paired test
def test_model_equal_to_baseline_is_not_significant():
    x = np.random.default_rng(0).random(500)
    res = bs.paired_test(bs.MeanStatistic(x), bs.MeanStatistic(x.copy()), len(x), resamples=500)
    assert res.delta == 0 and res.p_value == 1.0


def test_equally_good_different_model_is_not_significant():
    rng = np.random.default_rng(11)
    a, b = rng.random(800), rng.random(800)  # same distribution, different per-example scores
    b += a.mean() - b.mean()  # exactly equal corpus means
    res = bs.paired_test(bs.MeanStatistic(a), bs.MeanStatistic(b), 800, resamples=1000)
    assert res.delta == pytest.approx(0, abs=1e-12) and res.p_value > 0.5


def test_clearly_better_model_is_significant_and_pairing_matters():
    rng = np.random.default_rng(1)
    base = rng.random(300)
    better = base + 0.01  # better on every example by a margin far below the spread between examples
    res = bs.paired_test(bs.MeanStatistic(better), bs.MeanStatistic(base), 300, resamples=1000)
    assert res.p_value == pytest.approx(2 / 1001) and res.low == pytest.approx(0.01)
    # Unpaired intervals overlap: only the paired test sees the difference.
    ci_a = bs.confidence_interval(bs.MeanStatistic(better), 300)
    ci_b = bs.confidence_interval(bs.MeanStatistic(base), 300)
    assert ci_a.low < ci_b.high


def test_paired_test_on_cider_of_real_captions():
    hyps, refs = _corpus(150, seed=4)
    good = [r[0] for r in refs]
    better = bs.paired_test(CiderDStatistic(good, refs), CiderDStatistic(hyps, refs), 150, resamples=300)
    same = bs.paired_test(CiderDStatistic(hyps, refs), CiderDStatistic(list(hyps), refs), 150, resamples=300)
    assert better.delta > 0 and better.p_value < 0.01
    assert same.p_value == 1.0


def test_per_resample_wrapper_equals_vectorised_statistic():
    hyps, refs = _corpus(40, seed=9)
    fast = BleuStatistic(hyps, refs, 4)

    def corpus(ix):
        score, _ = Bleu(4).compute_score({k: refs[i] for k, i in enumerate(ix)},
                                         {k: [hyps[i]] for k, i in enumerate(ix)}, verbose=0)
        return score[3]

    a = bs.distribution(fast, 40, resamples=20, seed=3)
    b = bs.distribution(bs.per_resample(corpus), 40, resamples=20, seed=3)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------ vectorised metrics against pycocoevalcap
def test_cider_and_bleu_statistics_equal_pycocoevalcap_on_resamples():
    hyps, refs = _corpus(120, seed=2)
    cider, bleus = CiderDStatistic(hyps, refs, chunk=3), [BleuStatistic(hyps, refs, k) for k in (1, 2, 3, 4)]
    idx = _resamples(120, 6)
    got_c = cider(idx)
    got_b = [b(idx) for b in bleus]
    for r, row in enumerate(idx):  # row 0 = the corpus itself, then resamples with repeated examples
        gts = {k: refs[i] for k, i in enumerate(row)}
        res = {k: [hyps[i]] for k, i in enumerate(row)}
        want_c, _ = Cider().compute_score(gts, res)
        want_b, _ = Bleu(4).compute_score(gts, res, verbose=0)
        assert got_c[r] == pytest.approx(want_c, rel=1e-12, abs=1e-15)
        for k in range(4):
            assert got_b[k][r] == pytest.approx(want_b[k], rel=1e-12, abs=1e-18)


@pytest.mark.java
def test_meteor_statistic_equals_the_jar_eval_on_resamples():
    from idcbench.metrics._java import LOCALE_FLAGS, coco_dir, java_executable

    try:
        java = java_executable()
    except Exception as e:  # noqa: BLE001
        pytest.skip(str(e))
    hyps, refs = _corpus(60, seed=5)
    hyps[0], hyps[2] = refs[0][0], refs[2][-1]  # exact matches: their chunk is left out of the aggregate
    proc = subprocess.Popen([java, *LOCALE_FLAGS, "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en",
                             "-norm"], cwd=coco_dir() / "meteor", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        def ask(line: str) -> str:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        stats = [ask(" ||| ".join(["SCORE", " ||| ".join(r), h])) for h, r in zip(hyps, refs)]
        idx = _resamples(60, 4)
        got = MeteorStatistic(stats)(idx)
        for r, row in enumerate(idx):
            proc.stdin.write("EVAL ||| " + " ||| ".join(stats[i] for i in row) + "\n")
            proc.stdin.flush()
            for _ in row:
                proc.stdout.readline()
            assert got[r] == pytest.approx(float(proc.stdout.readline()), rel=1e-12)
    finally:
        proc.stdin.close()
        proc.kill()
        proc.wait()
