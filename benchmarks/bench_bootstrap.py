"""Speed of the bootstrap: 1,000 resamples of a CLEVR-Change-sized test set (7,970 pairs, ~7.5 references each).

`make bench` runs it. For comparison, pycocoevalcap's Cider on one such corpus takes ~4 s, so a naive bootstrap
(rescore every resample from scratch) would take over an hour per metric.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from idcbench import bootstrap as bs
from idcbench.metrics.bleu import BleuStatistic
from idcbench.metrics.cider import CiderDStatistic
from idcbench.metrics.meteor import MeteorStatistic

N = 7970
COLORS = ("red", "blue", "green", "gray", "purple", "cyan", "brown", "yellow")


def _corpus(n: int = N, seed: int = 0):
    rng = random.Random(seed)

    def sent() -> str:
        obj = f"the {rng.choice(['small', 'large'])} {rng.choice(COLORS)} {rng.choice(['metal', 'rubber'])} " \
              f"{rng.choice(['cube', 'sphere', 'cylinder'])}"
        return rng.choice([f"{obj} changed to {rng.choice(COLORS)}", f"{obj} has been added", f"{obj} is missing",
                           f"{obj} moved", "there is no change", f"someone changed {obj} to {rng.choice(COLORS)}"])

    return [sent() for _ in range(n)], [[sent() for _ in range(rng.randint(6, 9))] for _ in range(n)]


@pytest.fixture(scope="module")
def corpus():
    return _corpus()


def test_bench_cider_1000_resamples(benchmark, corpus):
    stat = CiderDStatistic(*corpus)
    benchmark.pedantic(lambda: bs.confidence_interval(stat, N, resamples=1000), rounds=1, iterations=1)


def test_bench_cider_setup(benchmark, corpus):
    benchmark.pedantic(lambda: CiderDStatistic(*corpus), rounds=1, iterations=1)


def test_bench_bleu_1000_resamples(benchmark, corpus):
    stat = BleuStatistic(*corpus)
    benchmark.pedantic(lambda: bs.confidence_interval(stat, N, resamples=1000), rounds=3, iterations=1)


def test_bench_meteor_1000_resamples(benchmark):
    rng = np.random.default_rng(0)
    stats = [" ".join(str(float(v)) for v in rng.integers(0, 9, size=23)) for _ in range(N)]
    stat = MeteorStatistic(stats)
    benchmark.pedantic(lambda: bs.confidence_interval(stat, N, resamples=1000), rounds=3, iterations=1)


def test_bench_paired_cider(benchmark, corpus):
    hyps, refs = corpus
    a, b = CiderDStatistic(hyps, refs), CiderDStatistic(hyps[::-1], refs)
    benchmark.pedantic(lambda: bs.paired_test(a, b, N, resamples=1000), rounds=1, iterations=1)
